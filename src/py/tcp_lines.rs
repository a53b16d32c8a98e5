//! `TcpClient.lines()`'s iterator (a submodule of `py/tcp.rs`).

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::TcpClient;
use crate::py::inline;

/// Iterator returned by ``TcpClient.lines()``: one line (with ``\n``) per
/// step, the unterminated rest last, stops at EOF.
#[pyclass(module = "socketkit._core", frozen)]
pub struct LineIterator {
    pub(super) client: Py<TcpClient>,
    pub(super) max_size: usize,
}

#[pymethods]
impl LineIterator {
    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let client = self.client.get();
        let max = self.max_size;
        let line = inline::recv_line(py, &client.conn, max)?;
        if line.is_empty() {
            return Ok(None);
        }
        Ok(Some(PyBytes::new(py, &line)))
    }
}

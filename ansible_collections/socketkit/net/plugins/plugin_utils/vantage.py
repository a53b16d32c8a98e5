# Copyright: socketkit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The controller side of every socketkit.net module: it names the vantage
point. The module runs on the managed host, which does not know its
inventory name; this passes it (the delegate's name under ``delegate_to``,
where the probe really runs from) unless the task set ``vantage``."""

from __future__ import annotations

from ansible.plugins.action import ActionBase


class VantageAction(ActionBase):
    # Probes change nothing: they run in check mode too, as wait_for does.
    _supports_check_mode = True
    _supports_async = True

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        if not args.get("vantage"):
            args["vantage"] = self._task.delegate_to or task_vars.get("inventory_hostname")
        wrap_async = self._task.async_val and not self._connection.has_native_async
        result.update(
            self._execute_module(
                module_name=self._task.resolved_action or self._task.action,
                module_args=args,
                task_vars=task_vars,
                wrap_async=wrap_async,
            )
        )
        return result

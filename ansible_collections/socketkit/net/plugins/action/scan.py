# Copyright: socketkit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""socketkit.net.scan's controller side: passes the inventory host name as ``vantage``."""

from __future__ import annotations

from ansible_collections.socketkit.net.plugins.plugin_utils.vantage import VantageAction


class ActionModule(VantageAction):
    pass

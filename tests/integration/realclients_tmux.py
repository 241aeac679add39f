# SPDX-License-Identifier: AGPL-3.0-or-later
"""A terminal for driving interactive programs (profanity) from the integration tests.

Terminal runs its own tmux server in the foreground (`tmux -D`) on a socket in the test's
temporary directory, with no configuration file, so it neither touches nor depends on any
other tmux of the machine.  The server runs under a small reaper process (REAPER below)
that is a child subreaper (prctl PR_SET_CHILD_SUBREAPER): whatever the programs in the
terminal leave behind (helpers that double-fork, like gpgme's gpg calls from profanity,
or a pane process tmux did not reap: with tmux 3.3a, profanity now and then stays a
zombie after /quit and pane_dead_status stays empty) is re-parented to the reaper
instead of to init.  close() kills the tmux server; the reaper then reaps everything
under it, kills what is still running after a grace period, and exits, so no process,
daemon or socket outlives the test.  Because of that tmux behaviour, an exit status is
best read from the screen (run the program under `sh -c 'prog; echo "status $?"'`);
panes stay on screen after their program exits (remain-on-exit).

Screen polling: wait_for() reads the pane every 0.2 s up to a deadline and, on timeout,
fails with the last screen so the reason is visible in the test report.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Union

POLL_S = 0.2
TMUX_TIMEOUT_S = 10.0
SOCKET_PATH_MAX = 100   # sun_path is 108 bytes on Linux
REAPER_GRACE_S = 3.0

# Runs argv as its child, reaps every process re-parented to it, and exits once the child
# has exited and no descendant is left (stragglers get SIGKILL after a grace period).
# Reports on stderr how many it had to kill.
REAPER = r"""
import ctypes, os, signal, sys, time
PR_SET_CHILD_SUBREAPER = 36
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
    sys.exit("reaper: prctl failed: errno %d" % ctypes.get_errno())
grace = float(sys.argv[1])
child = os.fork()
if child == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)

def children():
    me, found = str(os.getpid()), []
    for pid in os.listdir("/proc"):
        try:
            with open("/proc/%s/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[1] == me and fields[0] != "Z":
            found.append(int(pid))
    return found

status = None
while status is None:
    pid, st = os.wait()
    if pid == child:
        status = os.waitstatus_to_exitcode(st)
deadline = time.monotonic() + grace
killed = 0
while True:
    try:
        pid, _ = os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        break
    if pid:
        continue
    if time.monotonic() > deadline:
        for pid in children():
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
        deadline = float("inf")
    time.sleep(0.02)
print("reaper: %s exited %d; %d leftover processes killed" % (sys.argv[2], status, killed),
      file=sys.stderr)
"""


class TerminalError(AssertionError):
    pass


class Terminal:
    """One tmux server with one session of a fixed size running one command."""

    def __init__(self, workdir: Path, env: Dict[str, str], name: str = "t",
                 width: int = 160, height: int = 48):
        self.socket = Path(workdir) / "tmux.sock"
        self.socket_dir: Optional[Path] = None
        if len(str(self.socket)) > SOCKET_PATH_MAX:
            # a long --basetemp: use a short private directory, removed by close()
            self.socket_dir = Path(tempfile.mkdtemp(prefix="kr-tmux-"))
            self.socket = self.socket_dir / "tmux.sock"
        self.env = env
        self.name = name
        self.width = width
        self.height = height
        self.reaper: Optional[subprocess.Popen] = None
        self.reaper_log = Path(workdir) / "tmux-server.log"

    # ------------------------------------------------------------ lifecycle

    def start(self, argv: List[str]) -> None:
        with open(self.reaper_log, "wb") as log:
            self.reaper = subprocess.Popen(
                [sys.executable, "-c", REAPER, str(REAPER_GRACE_S),
                 "tmux", "-S", str(self.socket), "-f", "/dev/null", "-D"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=self.env,
                start_new_session=True)
        deadline = time.monotonic() + TMUX_TIMEOUT_S
        while not self.socket.exists():
            if self.reaper.poll() is not None:
                raise TerminalError("tmux server exited: %s" % self.log())
            if time.monotonic() > deadline:
                raise TerminalError("tmux server did not create %s" % self.socket)
            time.sleep(0.05)
        self.tmux("set-option", "-g", "default-terminal", "screen")
        self.tmux("set-option", "-g", "remain-on-exit", "on")
        self.tmux("set-option", "-g", "history-limit", "5000")
        self.tmux("new-session", "-d", "-s", self.name, "-x", str(self.width),
                  "-y", str(self.height), "--", *argv)

    def close(self) -> None:
        """Kill the session and the tmux server, and wait until every process that ran
        under it is gone. Safe to call twice."""
        if self.reaper is None:
            if self.socket_dir is not None:
                shutil.rmtree(self.socket_dir, ignore_errors=True)
                self.socket_dir = None
            return
        if self.reaper.poll() is None:
            subprocess.run(["tmux", "-S", str(self.socket), "kill-server"], env=self.env,
                           stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=TMUX_TIMEOUT_S)
            try:
                self.reaper.wait(TMUX_TIMEOUT_S + REAPER_GRACE_S)
            except subprocess.TimeoutExpired:
                self.reaper.kill()
                self.reaper.wait()
        if self.socket.exists():
            self.socket.unlink()
        if self.socket_dir is not None:
            shutil.rmtree(self.socket_dir, ignore_errors=True)
            self.socket_dir = None

    def log(self) -> str:
        """What the tmux server and the reaper wrote."""
        if not self.reaper_log.exists():
            return "(no log)"
        return self.reaper_log.read_text(errors="replace").strip()

    def __enter__(self) -> "Terminal":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------ commands

    def tmux(self, *args: str) -> str:
        res = subprocess.run(["tmux", "-S", str(self.socket), *args], env=self.env,
                             stdin=subprocess.DEVNULL, capture_output=True, text=True,
                             timeout=TMUX_TIMEOUT_S)
        if res.returncode != 0:
            raise TerminalError("tmux %s failed (exit %d): %s"
                                % (" ".join(args[:2]), res.returncode, res.stderr.strip()))
        return res.stdout

    def type_line(self, text: str) -> None:
        """Type text literally, then Enter."""
        self.tmux("send-keys", "-t", self.name, "-l", "--", text)
        self.tmux("send-keys", "-t", self.name, "Enter")

    def screen(self) -> str:
        """The visible screen plus its scroll-back, wrapped lines joined."""
        return self.tmux("capture-pane", "-p", "-J", "-S", "-", "-t", self.name)

    def wait_for(self, what: Union[str, "re.Pattern", Callable[[str], object]],
                 timeout: float = 20.0, describe: str = "") -> object:
        """Poll the screen until `what` (a regex string/pattern, or a predicate on the
        screen text) matches; return the match (or the predicate's value)."""
        if isinstance(what, str):
            what = re.compile(what, re.MULTILINE)
        test = what.search if isinstance(what, re.Pattern) else what
        deadline = time.monotonic() + timeout
        text = ""
        while True:
            text = self.screen()
            found = test(text)
            if found:
                return found
            if time.monotonic() > deadline:
                break
            time.sleep(POLL_S)
        raise TerminalError("screen did not show %s within %.0f s; screen:\n%s"
                            % (describe or getattr(what, "pattern", what), timeout,
                               _trim(text)))


def _trim(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.splitlines() if line.strip())

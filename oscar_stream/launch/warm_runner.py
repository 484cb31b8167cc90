"""The contract between a warm replica's dispatcher and its runner: a ``/bin/sh`` loop that runs the service's
script once per request, in the same container (or process tree) for the replica's whole life.

Only ``/bin/sh`` is needed from the user's image: in a pod the dispatcher is a sidecar, the runner is the user's
container, and they share one folder. Requests and completions travel as lines on two FIFOs in that folder (a
line shorter than PIPE_BUF is written atomically, so concurrent requests never interleave)::

    <root>/requests        "<id>\\n" per request, written by the dispatcher
    <root>/done            "<id> <exit code>\\n" per finished request, and "ready\\n" once, written by the runner
    <root>/home            the replica's own folder: $HOME and the working directory; it lives as long as the
                           replica, so a script can keep what it loaded (a model's weights) there between requests
    <root>/req/<id>/env    the request's variables (INPUT_FILE_PATH, TMP_OUTPUT_DIR, ...) as shell assignments
    <root>/req/<id>/log    the script's stdout and stderr

The runner is started as ``/bin/sh -c RUNNER_SCRIPT <script> <root> [yes|no]``. Each request runs the script in a
subshell of the runner: the request's variables are sourced, then the script itself (``$0`` is its path, no
positional parameters, ``set -u`` off, the runner's variables unset: as ``/bin/sh <script>`` would see it) — one
exec of ``/bin/sh`` per request fewer than starting it (~0.3 ms of CPU here). A replica that takes one request at a
time runs it in the runner's foreground (``one_at_a_time=yes``): one fork per request fewer again. Only where a
timed-out script can be killed with its runner (locally): in a pod a script that hangs would hold every request
behind it.
"""

from __future__ import annotations

from collections.abc import Mapping

RUNNER_SCRIPT = r"""
set -u
root="$1"; one_at_a_time="${2:-no}"
while [ ! -p "$root/done" ]; do sleep 0.1; done  # in a pod, the dispatcher beside us makes the FIFOs
exec 3<>"$root/requests" 4>"$root/done"
echo ready >&4
run_one() {
  (cd "$root/home" && . "$root/req/$1/env" && unset root one_at_a_time id && set +u -- && . "$0"
  ) </dev/null >"$root/req/$1/log" 2>&1 3<&- 4>&-
  echo "$1 $?" >&4
}
while IFS= read -r id <&3; do
  if [ "$one_at_a_time" = yes ]; then run_one "$id"; else run_one "$id" & fi
done
"""


def shell_quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


def request_env(variables: Mapping[str, str]) -> str:
    """The ``env`` file the runner sources before the script: one exported assignment per variable."""
    return "".join(f"export {name}={shell_quote(value)}\n" for name, value in variables.items())


def parse_done(line: str) -> tuple[str, int] | None:
    """``"<id> <code>"`` -> (id, code); the runner's ``ready`` line and anything else -> None."""
    ident, _, code = line.strip().partition(" ")
    return (ident, int(code)) if ident and code.isdigit() else None

"""Drives `kindling lab shell` through a pseudo-terminal like a student at a keyboard.

Usage: drive.py KINDLING LABS_DIR. Types only student commands (docker, the shell's built-ins)
and exits 0 when the shell says the lab is complete; prints the whole session either way.
"""
import os
import pty
import select
import sys
import time

kindling, labs = sys.argv[1], sys.argv[2]
pid, fd = pty.fork()
if pid == 0:
    os.execv(kindling, [kindling, "lab", "--labs-dir", labs, "--lang", "en", "shell", "fixture-docker"])

seen = b""


def fail(why):
    sys.stdout.write(seen.decode("utf-8", "replace"))
    sys.stdout.write("\n--- " + why + "\n")
    sys.exit(1)


def expect(*patterns, timeout=240):
    """Read until one of `patterns` appears after what was already matched; return its index."""
    global seen
    start = time.time()
    while True:
        text = seen.decode("utf-8", "replace")
        for i, p in enumerate(patterns):
            at = text.find(p)
            if at >= 0:
                seen = seen[len(text[: at + len(p)].encode("utf-8")):]
                sys.stdout.write(text[: at + len(p)])
                return i
        if time.time() - start > timeout:
            fail("timed out waiting for %r" % (patterns,))
        ready, _, _ = select.select([fd], [], [], 1)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                fail("the shell exited while waiting for %r" % (patterns,))
            if not chunk:
                fail("the shell closed while waiting for %r" % (patterns,))
            seen += chunk


# rustyline turns bracketed paste on when it starts reading a line and off when the line is
# accepted; redraws of a long line repeat the prompt, so these mark the real boundaries.
READING = "\x1b[?2004h"
ACCEPTED = "\x1b[?2004l"


def send(line):
    """Type a line and wait until the shell has taken it."""
    os.write(fd, line.encode() + b"\r")
    expect(ACCEPTED)


def command(line, *then):
    """Type a line, wait for each of `then` in order, then for the next prompt."""
    send(line)
    for t in then:
        expect(t)
    expect(READING)


def run_until_step(line, step):
    """Type `line`; if the automatic re-check did not move on yet, ask with `check`."""
    send(line)
    while expect(step, READING) == 1:
        time.sleep(1)
        send("check")
    expect(READING)


expect("Step 1/4")
expect(READING)
command("check", "no container named fx-web")
run_until_step("docker run -d --name fx-web -p 18481:80 kindling/whoami", "Step 2/4")
# Completion of a built-in: "hin<TAB>" becomes "hint ".
os.write(fd, b"hin\t")
time.sleep(0.5)
command("", "Hint 1/1")
command("docker network create fx-net")
command("docker network connect fx-net fx-web")
run_until_step("docker run -d --name fx-client --network fx-net kindling/toolbox sleep 3600", "Step 3/4")
command("docker volume create fx-data")
command("docker run -d --name fx-store -v fx-data:/data kindling/toolbox sleep 3600")
run_until_step("docker exec -i fx-store sh -c 'cat > /data/hello.txt' < hello.txt", "Step 4/4")
command("answer dns 1", "Saved answer 1")
send("answer dns 2")
expect("Lab complete: 10 of 10 points.")
expect(READING)
os.write(fd, b"quit\r")
_, status = os.waitpid(pid, 0)
sys.stdout.write(seen.decode("utf-8", "replace"))
if os.waitstatus_to_exitcode(status) != 0:
    fail("the shell exited with %d" % os.waitstatus_to_exitcode(status))
print("\n--- lab finished through the shell")

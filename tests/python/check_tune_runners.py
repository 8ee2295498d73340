#!/usr/bin/env python3
"""`qnnc tune --runner`: measuring candidates somewhere other than in a local `qnnc measure`.

- ssh: an OpenSSH server started here on 127.0.0.1 (its own host key, a key pair made for the
  test, a free port) stands in for a board. `qnnc tune --runner ssh://USER@127.0.0.1:PORT` on the
  host target copies a static measurement build there, runs it, and records its times; the
  records say which runner measured them, `qnnc compile --tuning-records` takes them, and the
  scratch directory on the remote side is gone afterwards. A closed port fails with a clear error.
- qemu: tuning for rpi4 under QEMU checks candidates and records them under a status compile
  never picks (emulated times do not rank schedules), and says so.
- tuning for rpi4 without a runner is refused with a message that names --runner.
Ends with 'N passed, M failed'."""
import argparse
import getpass
import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_sshd(d):
    """An sshd for this test only; returns (process, ssh config path, port)."""
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    if not os.path.exists(sshd):
        raise RuntimeError("sshd not found: install Debian's openssh-server (bash scripts/setup.sh does)")
    for name in ("hostkey", "userkey"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", os.path.join(d, name)], check=True)
    shutil.copy(os.path.join(d, "userkey.pub"), os.path.join(d, "authorized_keys"))
    os.chmod(os.path.join(d, "authorized_keys"), 0o600)
    port = free_port()
    with open(os.path.join(d, "sshd_config"), "w") as f:
        f.write(f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/hostkey\nAuthorizedKeysFile {d}/authorized_keys\n"
                f"PidFile {d}/sshd.pid\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n"
                "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n")
    with open(os.path.join(d, "ssh_config"), "w") as f:
        f.write(f"Host *\n  IdentityFile {d}/userkey\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n"
                "  BatchMode yes\n  LogLevel ERROR\n")
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege-separation directory
    p = subprocess.Popen([sshd, "-D", "-e", "-f", os.path.join(d, "sshd_config")], stderr=open(os.path.join(d, "sshd.log"), "w"))
    for _ in range(50):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    return p, os.path.join(d, "ssh_config"), port


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--qnnc", required=True)
    ap.add_argument("--workdir", required=True)
    args = ap.parse_args()
    args.workdir = os.path.abspath(args.workdir)
    shutil.rmtree(args.workdir, ignore_errors=True)
    os.makedirs(args.workdir)
    results = []

    def check(name, ok, detail=""):
        results.append(bool(ok))
        print(f"{'PASS' if ok else 'FAIL'}  {name}  {detail}", flush=True)

    def read(path):
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]

    model = ["builtin:resnet18", "--input-shape", "1,3,32,32", "--quantize", "int8"]
    env = dict(os.environ)

    def qnnc(*a):
        return subprocess.run([args.qnnc, *a], capture_output=True, text=True, env=env)

    # --- ssh ---------------------------------------------------------------------------------
    sshd = None
    try:
        os.makedirs(os.path.join(args.workdir, "sshd"))
        sshd, cfg, port = start_sshd(os.path.join(args.workdir, "sshd"))
        env["QNNC_SSH"] = f"ssh -F {cfg}"
        user = getpass.getuser()
        probe = subprocess.run(["ssh", "-F", cfg, "-p", str(port), f"{user}@127.0.0.1", "echo ok"], capture_output=True, text=True, timeout=30)
        check("test sshd accepts the test's key", probe.stdout.strip() == "ok", probe.stderr[-300:])
        before = set(glob.glob("/tmp/qnnc-measure-*"))
        rec = os.path.join(args.workdir, "ssh.jsonl")
        runner = f"ssh://{user}@127.0.0.1:{port}"
        p = qnnc("tune", *model, "-o", rec, "--trials", "3", "-j", "2", "-t", "1", "-n", "3", "--seed", "2", "--runner", runner)
        check("tune --runner ssh runs", p.returncode == 0, (p.stderr + p.stdout)[-800:])
        if p.returncode == 0:
            rs = read(rec)
            check("every record names the ssh runner", rs and all(r.get("runner") == runner for r in rs), f"{len(rs)} records")
            ok = [r for r in rs if r["status"] == "ok"]
            check("default and candidate measurements came back ok",
                  any(r["default"] for r in ok) and any(not r["default"] for r in ok),
                  f"{len(ok)} ok of {len(rs)}: " + "; ".join(sorted({r['status'][:80] for r in rs if r['status'] != 'ok'})))
            check("times are positive and min <= median",
                  all(0 < r["min_ms"] <= r["median_ms"] * 1.0001 for r in ok if not r["default"]))
            check("the remote scratch directory is removed", set(glob.glob("/tmp/qnnc-measure-*")) == before,
                  str(set(glob.glob("/tmp/qnnc-measure-*")) - before))
            p = qnnc("compile", *model, "-o", os.path.join(args.workdir, "ssh_tuned"), "-q", "--tuning-records", rec)
            check("compile takes the ssh runner's records", p.returncode == 0 and "kernels tuned from" in p.stdout,
                  (p.stderr + p.stdout)[-300:])
        closed = free_port()
        p = qnnc("tune", *model, "-o", os.path.join(args.workdir, "closed.jsonl"), "--trials", "1", "--runner",
                 f"ssh://{user}@127.0.0.1:{closed}")
        check("a closed port is a clear error", p.returncode != 0 and "ssh to" in p.stderr, p.stderr[-300:])
    except Exception as e:  # noqa: BLE001 - reported as a failed check
        check("ssh runner", False, repr(e))
    finally:
        if sshd:
            sshd.terminate()
            sshd.wait()
        env.pop("QNNC_SSH", None)

    # --- qemu --------------------------------------------------------------------------------
    rec = os.path.join(args.workdir, "qemu.jsonl")
    p = qnnc("tune", *model, "--target", "rpi4", "-o", rec, "--trials", "2", "-j", "2", "-n", "2", "--runner", "qemu")
    check("tune --target rpi4 --runner qemu runs and says its times are not used",
          p.returncode == 0 and "emulated" in p.stderr + p.stdout, (p.stderr + p.stdout)[-600:])
    if p.returncode == 0:
        rs = read(rec)
        check("qemu records are marked emulated (or failed), never ok",
              rs and all(r["status"] == "checked: emulated time, not used" or r["status"].startswith("failed") for r in rs)
              and any(not r["default"] and r["status"].startswith("checked") for r in rs),
              f"{len(rs)} records")
        p = qnnc("compile", *model, "--target", "rpi4", "-o", os.path.join(args.workdir, "qemu_tuned"), "-q",
                 "--tuning-records", rec)
        check("compile uses no emulated record", p.returncode == 0 and "0 kernels tuned" in p.stdout, p.stdout[-300:])
    p = qnnc("tune", *model, "--target", "rpi4", "-o", os.path.join(args.workdir, "none.jsonl"), "--trials", "1")
    check("rpi4 without a runner is refused, naming --runner", p.returncode != 0 and "--runner" in p.stderr, p.stderr[-300:])

    passed = sum(results)
    print(f"{passed} passed, {len(results) - passed} failed")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())

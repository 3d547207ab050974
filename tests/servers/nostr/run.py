"""Runs `nostr-relay` (PyPI) with its own default configuration on a given port.

Usage: target/py-servers/bin/python tests/servers/nostr/run.py [--auth] PORT [DATA_DIR]

The configuration is the config.yaml that ships inside the installed
nostr_relay package, read at start, with only these keys changed:
  gunicorn.bind / purple.host+port      -> 127.0.0.1:PORT
  authentication.relay_urls             -> ws://127.0.0.1:PORT/ and ws://localhost:PORT/
                                           (with and without the slash)
  authentication.enabled                -> true with --auth (NIP-42: the relay
                                           challenges every socket and checks the
                                           answers; anonymous clients may still
                                           read and write), else the default (off)
  storage."sqlalchemy.url"              -> an SQLite file in DATA_DIR
  gunicorn.control_socket               -> DATA_DIR/gunicorn.ctl (gunicorn's default,
                                           ~/.gunicorn/gunicorn.ctl, is shared by every
                                           instance on the machine)
DATA_DIR defaults to a fresh temporary directory that is removed when the
relay stops. Everything else (signature and created_at validators, limits,
gunicorn with one uvicorn worker) is the package's default. The relay is run
as `nostr-relay -c CONFIG serve` from the same virtualenv as this Python.
SIGTERM/SIGINT are passed on to it.
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile

import nostr_relay
import yaml


def main() -> int:
    args = sys.argv[1:]
    auth = args[:1] == ["--auth"]
    if auth:
        args = args[1:]
    if len(args) not in (1, 2) or not args[0].isdigit():
        print(__doc__, file=sys.stderr)
        return 2
    port = int(args[0])
    made_dir = len(args) == 1
    data_dir = tempfile.mkdtemp(prefix="squall-nostr-") if made_dir else args[1]
    os.makedirs(data_dir, exist_ok=True)

    default = os.path.join(os.path.dirname(nostr_relay.__file__), "config.yaml")
    with open(default) as fp:
        conf = yaml.safe_load(fp)
    conf["gunicorn"]["bind"] = f"127.0.0.1:{port}"
    conf["gunicorn"]["control_socket"] = os.path.join(os.path.abspath(data_dir), "gunicorn.ctl")
    conf["purple"]["host"] = "127.0.0.1"
    conf["purple"]["port"] = port
    conf["authentication"]["relay_urls"] = [
        f"ws://{host}:{port}{slash}" for host in ("127.0.0.1", "localhost") for slash in ("/", "")
    ]
    if auth:
        conf["authentication"]["enabled"] = True
    db = os.path.join(os.path.abspath(data_dir), "nostr.sqlite3")
    conf["storage"]["sqlalchemy.url"] = f"sqlite+aiosqlite:///{db}"
    config_file = os.path.join(data_dir, "config.yaml")
    with open(config_file, "w") as fp:
        yaml.safe_dump(conf, fp)

    relay_bin = os.path.join(os.path.dirname(sys.executable), "nostr-relay")
    child = subprocess.Popen([relay_bin, "-c", config_file, "serve"], cwd=data_dir)

    def forward(signum, _frame):
        child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    try:
        return child.wait()
    finally:
        if made_dir:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

"""``python -m fedsim.deployment``: what a real federation's machines need from fedsim.

    app FOLDER [OVERRIDES...] [--run-dir DIR]   a Flower App folder for `flwr run` (the experiment of OVERRIDES)
    certificates FOLDER [--host HOST ...]      a CA (ca.crt) and a SuperLink certificate (server.pem, server.key)
    node-key PATH                              a SuperNode's key pair (PATH, PATH.pub) for node authentication
    clientapp --supernode HOST:PORT            serve a SuperNode's ClientApp tasks (its --isolation process)
"""

import argparse
import sys

from fedsim.deployment.certificates import LOCAL_HOSTS


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fedsim.deployment", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    app = commands.add_parser("app", help="write a Flower App folder whose run config is a fedsim experiment")
    app.add_argument("folder")
    app.add_argument("overrides", nargs="*", help="fedsim's settings, as on the fedsim command line")
    app.add_argument("--run-dir", default="", help="where the ServerApp writes the run folder (default: "
                     "fedsim-runs/RUN_ID under the SuperLink's working folder)")
    certificates = commands.add_parser("certificates", help="make a CA and a certificate for the SuperLink")
    certificates.add_argument("folder")
    certificates.add_argument("--host", action="append", help="a name or IP address the SuperNodes reach the "
                              f"SuperLink by (repeat it; default: {' '.join(LOCAL_HOSTS)})")
    node_key = commands.add_parser("node-key", help="make a SuperNode's authentication key pair")
    node_key.add_argument("path")
    clientapp = commands.add_parser("clientapp", help="run fedsim's ClientApp for a SuperNode started with "
                                    "--isolation process")
    clientapp.add_argument("--supernode", required=True, help="the SuperNode's Runtime API, HOST:PORT (its "
                           "--host and --port)")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.command == "app":
        from fedsim.compose import compose
        from fedsim.config import ConfigError
        from fedsim.deployment.project import run_config_of, write_app

        try:
            cfg, choices = compose("engine=deployment", *args.overrides)
        except Exception as error:  # noqa: BLE001  # pylint: disable=broad-exception-caught  # Hydra's own message, on one line
            sys.exit(f"fedsim: error: {' '.join(str(error).split())}")
        from fedsim.plan import check_options

        try:
            check_options(cfg)  # every setting against its option's target (the values their targets check at run time)
            folder = write_app(args.folder, run_config_of(cfg, choices, args.run_dir))
        except ConfigError as error:
            sys.exit(f"fedsim: error: {error}")
        print(f"wrote {folder / 'pyproject.toml'}; run it with: flwr run {folder} CONNECTION")
    elif args.command == "certificates":
        from fedsim.deployment.certificates import make_certificates

        folder = make_certificates(args.folder, args.host or LOCAL_HOSTS)
        print(f"{folder}: ca.crt (for every SuperNode), server.pem and server.key (for the SuperLink)")
    elif args.command == "node-key":
        from fedsim.deployment.certificates import make_node_key

        private, public = make_node_key(args.path)
        print(f"{private} (for the SuperNode), {public} (flwr supernode register {public} CONNECTION)")
    else:
        from fedsim.deployment.clientapp_executor import serve

        try:
            serve(args.supernode)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()

"""``msqcore`` command line: ``msqcore serve [--host] [--port] [--data-dir]``."""
from __future__ import annotations

import argparse
import logging
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="msqcore", description="Druid SQL-based ingestion (MSQ) on one machine")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP server (Druid's router API)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8888)
    serve.add_argument("--data-dir", default="./var", help="metadata, segments and temp files (default ./var)")
    serve.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    if args.command == "serve":
        return serve_main(args)
    return 2


def serve_main(args) -> int:
    from aiohttp import web

    from msqcore.cluster import ClusterConfig
    from msqcore.server.app import create_app

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = ClusterConfig(data_dir=args.data_dir, host=args.host, port=args.port)
    app = create_app(config)
    print(f"msqcore serving Druid's API on http://{args.host}:{args.port} (data dir {args.data_dir})", flush=True)
    # run_app handles SIGINT and SIGTERM: the cleanup context cancels running tasks.
    web.run_app(app, host=args.host, port=args.port, shutdown_timeout=10, print=None, access_log=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())

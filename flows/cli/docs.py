"""`wap docs serve` and `wap docs build`: the GX data docs site over HTTP, or as a self-contained copy."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.cli.common import EXIT_BAD_INPUT, EXIT_NOT_PUBLISHED, cli_errors, err, fail, one_line, out

docs_app = typer.Typer(no_args_is_help=True)

# Commands whose runs link to data docs pages (artifacts, reports): a bad WAP_DOCS_URL stops them before any work.
LINKING_COMMANDS = frozenset({"run", "demo", "validate", "serve"})

Site = Annotated[
    str | None,
    typer.Option("--site", help="Data docs site of the GX project (great_expectations.yml). [default: local_site]"),
]


def check_docs_url() -> None:
    """Exit 2 with one line if WAP_DOCS_URL is set but no http(s) base URL."""
    with cli_errors():
        from flows.reports.docs_site import docs_base_url

        docs_base_url()


@docs_app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0: every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free port).", min=0, max=65535)] = 8900,
    site: Site = None,
) -> None:
    """Serve the GX data docs site read-only over HTTP, its CSS, JS and fonts from wap's own copies (no network).
    The Prefect data-docs link artifacts point here: at WAP_DOCS_URL, by default http://127.0.0.1:8900.
    Ctrl-C stops it. Exit 2 bad site, 3 cannot listen on the address."""
    with cli_errors():
        from flows.reports.docs_server import make_server
        from flows.reports.docs_site import DOCS_URL_ENV, docs_base_url, site_directory

        root = site_directory(site)
        try:
            server = make_server(root, host, port)
        except OSError as exc:
            fail(f"error: cannot listen on {host}:{port}: {one_line(exc)}", EXIT_NOT_PUBLISHED)
        bound_host, bound_port = str(server.server_address[0]), int(server.server_address[1])
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        address = f"http://{shown}:{bound_port}"
        out.print(f"serving the data docs of {root} at {address}/ (Ctrl-C stops)", markup=False, soft_wrap=True)
        if not (root / "index.html").is_file():
            out.print("no pages yet: they appear with the first audit", markup=False)
        base = docs_base_url()
        if base != address:
            out.print(
                f"links in the Prefect UI open {base}/... ({DOCS_URL_ENV}): point it at this server's address"
                " as other machines reach it",
                markup=False,
                soft_wrap=True,
            )
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            err.print("stopped")
        finally:
            server.server_close()


@docs_app.command()
def build(
    out_dir: Annotated[Path, typer.Option("--out", help="Directory to write the site to (created).")],
    site: Site = None,
) -> None:
    """Write a self-contained copy of the data docs site to --out: every page with its assets beside it (no CDN,
    opens as files too), ready to upload to an object store or web server; then set WAP_DOCS_URL to where it is
    served. Exit 2 bad site or --out."""
    with cli_errors():
        from flows.reports.docs_site import build_site, site_directory

        root = site_directory(site)
        try:
            pages = build_site(root, out_dir)
        except OSError as exc:
            fail(f"error: cannot write {out_dir}: {one_line(exc)}", EXIT_BAD_INPUT)
        out.print(f"wrote {pages} data docs pages of {root} to {out_dir.resolve()}", markup=False, soft_wrap=True)

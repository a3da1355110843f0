"""The ``mamamia`` command line.

The sdk owns the top-level group; ``mamamia ingest``, ``mamamia phantom``, ``mamamia verify`` and
``mamamia serve`` come from the packages that register them under the ``mamamia.commands`` entry
point group, so installing only the sdk keeps it light. A known command whose package is missing
fails with the install hint instead of "no such command".
"""

from __future__ import annotations

from importlib.metadata import entry_points

import click

__all__ = ["PLUGIN_COMMANDS", "main"]

#: Commands other packages provide, and the distribution that provides each.
PLUGIN_COMMANDS: dict[str, str] = {
    "ingest": "mamamia-ingest",
    "phantom": "mamamia-ingest",
    "verify": "mamamia-ingest",
    "upgrade": "mamamia-ingest",
    "serve": "mamamia-server",
}

# One-line help for plugin commands, so `mamamia --help` need not import heavy packages.
_PLUGIN_SUMMARIES: dict[str, str] = {
    "ingest": "Turn a raw MAMA-MIA folder into a catalog.",
    "phantom": "Write a phantom raw dataset in the exact MAMA-MIA layout.",
    "verify": "Check every array and chunk of a catalog.",
    "upgrade": "Rewrite a format-1 catalog as format 2, without the raw folder.",
    "serve": "Serve a catalog over HTTP.",
}


class _PluginGroup(click.Group):
    """A click group that also lists and loads commands registered by other packages."""

    def _plugins(self) -> dict[str, object]:
        return {ep.name: ep for ep in entry_points(group="mamamia.commands")}

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = set(super().list_commands(ctx)) | set(self._plugins())
        return sorted(names)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        plugin = self._plugins().get(cmd_name)
        if plugin is not None:
            try:
                loaded = plugin.load()  # type: ignore[attr-defined]
            except Exception as exc:  # a broken install must not break every other command
                return _broken_package_command(cmd_name, exc)
            if not isinstance(loaded, click.Command):
                raise click.ClickException(f"entry point {cmd_name!r} is not a click command")
            return loaded
        if cmd_name in PLUGIN_COMMANDS:
            return _missing_package_command(cmd_name, PLUGIN_COMMANDS[cmd_name])
        return None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        builtin = set(super().list_commands(ctx))
        rows = []
        for name in self.list_commands(ctx):
            if name in builtin:
                command = super().get_command(ctx, name)
                summary = command.get_short_help_str(70) if command else ""
            else:
                summary = _PLUGIN_SUMMARIES.get(name, "")
                if name not in self._plugins():
                    summary += f" (needs {PLUGIN_COMMANDS[name]})"
            rows.append((name, summary))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _broken_package_command(name: str, error: Exception) -> click.Command:
    @click.command(
        name=name, context_settings={"ignore_unknown_options": True, "allow_extra_args": True}
    )
    def broken() -> None:
        raise click.ClickException(
            f"'mamamia {name}' could not be loaded ({type(error).__name__}: {error}); "
            f"reinstall {PLUGIN_COMMANDS.get(name, 'its package')}"
        )

    return broken


def _missing_package_command(name: str, distribution: str) -> click.Command:
    @click.command(
        name=name,
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
        help=f"(needs {distribution}: pip install {distribution})",
    )
    def missing() -> None:
        raise click.ClickException(
            f"'mamamia {name}' is provided by the {distribution} package, which is not "
            f"installed. Install it with: pip install {distribution}"
        )

    return missing


@click.group(cls=_PluginGroup)
@click.version_option(package_name="mamamia")
def main() -> None:
    """mamamia: catalog, query and stream the MAMA-MIA breast DCE-MRI dataset."""


def _register_builtin_commands() -> None:
    from mamamia._cli_catalog import cache_group, case_command, query_command
    from mamamia._sync._command import sync_command

    main.add_command(query_command)
    main.add_command(case_command)
    main.add_command(sync_command)
    main.add_command(cache_group)
    from mamamia._cli_evaluate import evaluate_group  # light: imports the scoring on use
    from mamamia._cli_interop import cite_command, export_group

    main.add_command(evaluate_group)
    main.add_command(export_group)
    main.add_command(cite_command)


_register_builtin_commands()

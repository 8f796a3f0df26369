"""``newsletter campaign``: the group, assembled from the writing and the sending commands.

The commands live in :mod:`.campaign_write` (new, lint, build, preview, signoff, list),
:mod:`.campaign_send` (send, status, test) and :mod:`.campaign_report` (report); none imports another
or this module.
"""

from __future__ import annotations

import click

from newsletter.cli import campaign_report, campaign_send, campaign_write


@click.group("campaign")
def campaign_group() -> None:
    """Write, check, preview and send campaigns.

    A campaign is a Markdown file in campaigns/ (see the README's guide for staff).
    """


for _command in (*campaign_write.COMMANDS, *campaign_send.COMMANDS, *campaign_report.COMMANDS):
    campaign_group.add_command(_command)

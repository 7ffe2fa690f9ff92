"""The weekly report (周报, DESIGN A14): a data model and its renderers to .xlsx and A4 .pdf.

The renderers import heavy libraries (xlsxwriter, matplotlib, fpdf2), so they are not imported
here: use ``broadcaster.report.xlsx.write_xlsx`` and ``broadcaster.report.pdf.write_pdf``.
"""

from broadcaster.report.model import (
    BroadcastRow,
    ChannelRow,
    CheckinRow,
    EscalationRow,
    FeedFailureRow,
    IncidentRow,
    NightRow,
    Period,
    PlayVillageRow,
    SmsGroupRow,
    WeekReport,
    report_period,
    week_label,
    week_of_night,
)

__all__ = [
    "BroadcastRow",
    "ChannelRow",
    "CheckinRow",
    "EscalationRow",
    "FeedFailureRow",
    "IncidentRow",
    "NightRow",
    "Period",
    "PlayVillageRow",
    "SmsGroupRow",
    "WeekReport",
    "report_period",
    "week_label",
    "week_of_night",
]

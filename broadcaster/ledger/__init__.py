"""The ledger (SQLAlchemy 2): readings, alerts, deliveries, audit; the source of truth.

The only package that imports sqlalchemy: everything else asks :class:`Ledger` and its owners
(``ledger.deliveries``, ``ledger.reads``, ``ledger.people``, ``ledger.report_reads``,
``ledger.reports``).
"""

from broadcaster.ledger.models import (
    Alert,
    ApiToken,
    AuditEntry,
    ConsoleSession,
    ConsoleUser,
    ContactFlag,
    Delivery,
    EndpointContact,
    Incident,
    IncidentCorrection,
    ReadingRow,
    ReportRecord,
)
from broadcaster.ledger.rows import DeliveryJob, Outcome, Receipt, chat_row, display_row, play_row, sms_row
from broadcaster.ledger.schema import SchemaError, SchemaOutOfDate
from broadcaster.ledger.store import Ledger, upgrade_schema
from broadcaster.ledger.transitions import FINAL, OPEN, STATES, TRANSITIONS

__all__ = ["FINAL", "OPEN", "STATES", "TRANSITIONS", "Alert", "ApiToken", "AuditEntry", "ConsoleSession",
           "ConsoleUser", "ContactFlag", "Delivery", "DeliveryJob", "EndpointContact", "Incident",
           "IncidentCorrection", "Ledger", "Outcome", "ReadingRow", "Receipt", "ReportRecord", "SchemaError",
           "SchemaOutOfDate", "chat_row", "display_row", "play_row", "sms_row", "upgrade_schema"]

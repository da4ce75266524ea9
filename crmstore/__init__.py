"""CRM side-store: customers, contact history, grading, flags and follow-ups behind one async repository.

    store = await open_store("sqlite:///var/lib/ctiserver/crm.db", default_country="CN")
    pop = await store.screen_pop(phone=caller, viewer=agent)
"""

from .errors import (
    CrmConflict,
    CrmError,
    CrmNotFound,
    CrmPermissionError,
    CrmWriteError,
    ImportFormatError,
    InvalidPhone,
    SchemaTooNew,
)
from .model import (
    COMPLAINT,
    AuditEntry,
    CallFacts,
    ChurnEntry,
    ChurnKind,
    ChurnSignal,
    CustomerCard,
    Direction,
    Flag,
    FlagMark,
    FollowUp,
    FollowUpKind,
    FollowUpRequest,
    FollowUpStatus,
    Grade,
    GradeChange,
    GradingReport,
    ImportReport,
    Interaction,
    NewCustomer,
    NextAction,
    Outcome,
    Purchase,
    RejectedRow,
    ScreenPop,
    Ticket,
    TicketStatus,
    WrapUp,
)
from .phones import normalize_phone, try_normalize_phone
from .privacy import MATRIX, SYSTEM, Right, Role, Viewer
from .queries import Identity, PopSettings
from .signals import ChurnRules
from .store import CrmStore, open_store

__all__ = [
    "COMPLAINT", "MATRIX", "SYSTEM", "AuditEntry", "CallFacts", "ChurnEntry", "ChurnKind", "ChurnRules",
    "ChurnSignal", "CrmConflict", "CrmError", "CrmNotFound", "CrmPermissionError", "CrmStore", "CrmWriteError",
    "CustomerCard", "Direction", "Flag", "FlagMark", "FollowUp", "FollowUpKind", "FollowUpRequest",
    "FollowUpStatus", "Grade", "GradeChange", "GradingReport", "Identity", "ImportFormatError", "ImportReport",
    "Interaction", "InvalidPhone", "NewCustomer", "NextAction", "Outcome", "PopSettings", "Purchase",
    "RejectedRow", "Right", "Role", "SchemaTooNew", "ScreenPop", "Ticket", "TicketStatus", "Viewer", "WrapUp",
    "normalize_phone", "open_store", "try_normalize_phone",
]

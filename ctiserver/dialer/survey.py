"""Survey campaigns: an answered person is handed to the campaign's IVR survey flow, not to an agent.

The pacer paces a survey campaign by survey lines instead of agents: each of the campaign's
`survey_lines` is a virtual agent ("survey-1" ...) that is free when no survey call holds it. A person
answers, the pacer connects the call to a free survey line, and the dialer redirects the line into
`[cti-survey]` (asterisk-config/extensions.conf), where the FastAGI `survey` entry runs the flow named by
the campaign; the answers are journaled and kept with the customer (ctiserver/ivr). The 2-second rule and
the abandonment cap hold as for agents: a survey line is free at once, so only predictive pacing can
run out of them. Answering machines get no survey: the campaign's machine action and retry rule apply.
"""

from __future__ import annotations

from crmstore.campaign_plans import StoredCampaign
from crmstore.campaigns import CampaignKind, ContactState

CONTEXT = "cti-survey"
PORT_PREFIX = "survey-"


def is_survey(stored: StoredCampaign) -> bool:
    return stored.campaign.kind is CampaignKind.SURVEY


def survey_lines(stored: StoredCampaign) -> list[str]:
    """The campaign's survey lines, as the pacer's agents."""
    return [f"{PORT_PREFIX}{n}" for n in range(1, stored.campaign.survey_lines + 1)]


def originate_variables(stored: StoredCampaign, contact: ContactState) -> dict[str, str]:
    """What the survey entry reads from the line: the flow, and who answered (the CRM's customer)."""
    return {"CTI_SURVEY_FLOW": stored.campaign.flow, "CTI_CONTACT_NUMBER": contact.e164,
            "CTI_CUSTOMER_ID": str(contact.customer_id) if contact.customer_id is not None else ""}

"""The supervisors' campaign row: each figure from its owner (the campaign's progress, the pacer's
status), penetration and progress over the callable contacts, the window's rate judged against the cap."""

from __future__ import annotations

from acd.pacing import PacingStatus
from crmstore.campaign_plans import StoredCampaign
from crmstore.campaigns import Campaign, CampaignKind, CampaignProgress, CampaignStatus, is_right_party
from ctiserver.supervision.campaigns import campaign_row


def _progress(**changes: object) -> CampaignProgress:
    base: dict[str, object] = {
        "name": "spring", "status": CampaignStatus.ACTIVE, "contacts": 10, "pending": 3, "retry": 2, "dialing": 1,
        "done": 3, "excluded": 2, "tried": 5, "attempts": 9, "connects": 3, "right_party": 2,
        "outcomes": {"connected": 3, "busy": 4, "abandoned": 1, "answering_machine": 1}}
    return CampaignProgress(**{**base, **changes})  # type: ignore[arg-type]


def _pacing(rate: float, busy: int, free: int) -> PacingStatus:
    return PacingStatus("spring", "predictive", False, rate, 30.0, 30.0 * rate, 0.3, 2, 0, free, busy, 1.5, 0.9)


def test_a_running_campaign_shows_its_pacers_window_and_occupancy() -> None:
    stored = StoredCampaign(1, Campaign("spring", queue="sales", abandon_cap=0.03), CampaignStatus.ACTIVE)
    row = campaign_row(stored, _progress(), _pacing(0.04, busy=3, free=1))
    assert (row["state"], row["attempts"], row["connects"], row["right_party"]) == ("running", 9, 3, 2)
    assert (row["callable"], row["penetration_pct"], row["progress_pct"]) == (8, 62.5, 37.5)  # 5/8, 3/8
    # the window's 4% is over the 3% cap (the whole campaign's 1/4 is not what the cap is held on)
    assert (row["abandon_rate_pct"], row["abandon_cap_pct"], row["over_cap"]) == (4.0, 3.0, True)
    assert (row["occupancy_pct"], row["agents_busy"], row["agents_free"]) == (75.0, 3, 1)


def test_a_paused_or_not_running_campaign_has_no_window_and_an_empty_list_no_penetration() -> None:
    stored = StoredCampaign(2, Campaign("csat", kind=CampaignKind.SURVEY, flow="satisfaction_survey_en"),
                            CampaignStatus.PAUSED)
    row = campaign_row(stored, _progress(contacts=0, excluded=0, tried=0, done=0, pending=0, retry=0, dialing=0),
                       None)
    assert (row["state"], row["kind"], row["abandon_rate_pct"], row["occupancy_pct"]) == ("paused", "survey", None,
                                                                                           None)
    assert (row["penetration_pct"], row["progress_pct"], row["over_cap"]) == (None, None, False)


def test_right_party_is_a_connect_unless_the_disposition_says_somebody_else() -> None:
    assert is_right_party("connected") and is_right_party("connected", "sale")
    assert not is_right_party("connected", "wrong_number") and not is_right_party("connected", " Wrong_Party ")
    assert not is_right_party("abandoned") and not is_right_party("answering_machine", "sale")

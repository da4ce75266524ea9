"""The voicemail inbox on the real app: a caller leaves a message in the demo IVR (key 9); supervisors see
it with the caller and the CRM match, give it to an agent, who plays it over HTTP and marks it done."""

from __future__ import annotations

import io
import os
import time
import wave
from pathlib import Path

from tests.gateway.gw_harness import AGENT1, PLAIN_CALLER
from tests.recordings.rec_site import console, http_get, leave_voicemail, message_wav, rec_site, voicemail_row


async def test_voicemail_listed_with_crm_match_assigned_played_and_done(tmp_path: Path) -> None:
    async with rec_site(tmp_path) as site:
        leave_voicemail(site, PLAIN_CALLER, message_wav(tmp_path / "message.wav"))
        call_id = await voicemail_row(site, PLAIN_CALLER)
        boss = await console(site, "super1")
        a1 = await console(site, "agent1")
        a2 = await console(site, "agent2")
        customer = site.crm_rows("SELECT c.id, c.name FROM customers c JOIN phones p ON p.customer_id = c.id"
                                 " WHERE p.e164 = ?", PLAIN_CALLER)[0]

        listed = await boss.request("voicemail_list")
        row = next(v for v in listed["data"]["voicemails"] if v["call_id"] == call_id)
        assert (row["caller"], row["customer_id"], row["customer_name"], row["status"], row["available"]) == (
            PLAIN_CALLER, customer["id"], customer["name"], "new", True)

        # Not given to anybody yet: agents neither see nor hear it, nor may they hand it out.
        assert (await a1.request("voicemail_list"))["data"]["voicemails"] == []
        refused = await a1.request("voicemail_play", voicemail_id=call_id)
        assert (refused["type"], refused["reason"]) == ("error", "not_yours")
        forbidden = await a1.request("voicemail_assign", voicemail_id=call_id, agent_id=AGENT1)
        assert (forbidden["type"], forbidden["code"]) == ("error", "forbidden")
        unknown = await boss.request("voicemail_assign", voicemail_id=call_id, agent_id="9999")
        assert (unknown["type"], unknown["reason"]) == ("error", "unknown_agent")

        assigned = await boss.request("voicemail_assign", voicemail_id=call_id, agent_id=AGENT1)
        assert assigned["data"] == {"call_id": call_id, "status": "assigned", "assigned_to": AGENT1}
        pushed = await a1.wait_for("voicemail_assigned")
        assert pushed["call_id"] == call_id
        mine = (await a1.request("voicemail_list"))["data"]["voicemails"]
        assert [(v["call_id"], v["status"]) for v in mine] == [(call_id, "assigned")]
        other = await a2.request("voicemail_play", voicemail_id=call_id)
        assert (other["type"], other["reason"]) == ("error", "not_yours")

        played = await a1.request("voicemail_play", voicemail_id=call_id)
        assert played["type"] == "result", played
        status, headers, body = await http_get(site.http_url + played["data"]["url"])
        assert status == 200 and headers["Content-Type"] == "audio/wav"
        with wave.open(io.BytesIO(body)) as w:
            seconds = w.getnframes() / w.getframerate()
            frames = w.readframes(w.getnframes())
        with wave.open(str(tmp_path / "message.wav")) as m:
            message = m.readframes(m.getnframes())
        # the caller's message, whole, with the pause before it and the second of silence RECORD FILE keeps
        assert message in frames and 2.5 < seconds < 2.5 + 3.0
        assert abs(played["data"]["seconds"] - seconds) < 0.01
        audits = site.crm_rows("SELECT actor, action, customer_id FROM audit_log WHERE action LIKE 'voicemail%' "
                               "ORDER BY id")
        assert [(r["actor"], r["action"], r["customer_id"]) for r in audits] == [
            ("super1", "voicemail_assign", customer["id"]), ("agent1", "voicemail_play", customer["id"])]

        done = await a1.request("voicemail_done", voicemail_id=call_id)
        assert done["data"] == {"call_id": call_id, "status": "done"}
        twice = await a1.request("voicemail_done", voicemail_id=call_id)
        assert (twice["type"], twice["reason"]) == ("error", "already_done")
        late = await boss.request("voicemail_assign", voicemail_id=call_id, agent_id=AGENT1)
        assert (late["type"], late["reason"]) == ("error", "already_done")
        row = next(v for v in (await boss.request("voicemail_list"))["data"]["voicemails"] if v["call_id"] == call_id)
        assert (row["status"], row["done_by"]) == ("done", "agent1")
        # Ids only, for voicemails too.
        bad = await boss.request("voicemail_play", voicemail_id="../crm.db")
        assert (bad["type"], bad["field"]) == ("error", "voicemail_id")


async def test_retention_deletes_old_recordings_and_audits_it(tmp_path: Path) -> None:
    async with rec_site(tmp_path, recording_retention_days=30) as site:
        files = site.server.recordings.settings.files
        old, new = files.path("1700000000.1"), files.path("1700000000.2")
        for path in (old, new):
            with wave.open(str(path), "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(8000)
                w.writeframes(b"\0\0" * 800)
        os.utime(old, (time.time() - 31 * 86400,) * 2)
        assert await site.server.recordings.sweep_once() == [old.name]
        assert not old.exists() and new.exists()
        rows = site.crm_rows("SELECT actor, detail FROM audit_log WHERE action = 'recording_retention'")
        assert [(r["actor"], r["detail"]) for r in rows] == [("system", f"1 deleted after 30 days: {old.name}")]

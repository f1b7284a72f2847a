"""Per-stage message digests in the ledger, and the cross-party check of sent vs received."""

from __future__ import annotations

from jointly.node.trail import MessageDigests, cross_check_stages


def _run(tamper: bool = False) -> dict[str, list[tuple[str, str, dict[str, object]]]]:
    bank, telco = MessageDigests(), MessageDigests()
    messages = [("psi/ecdh/0", b"alpha"), ("psi/ecdh/1", b"beta"), ("load/x", b"gamma")]
    for tag, data in messages:
        bank("sent", "telco", tag, data)
        telco("received", "bank", tag, b"altered" if tamper and tag == "psi/ecdh/1" else data)
    telco("sent", "bank", "psi/ecdh/2", b"reply")
    bank("received", "telco", "psi/ecdh/2", b"reply")
    return {
        "bank": [("job1", stage, data) for stage, data in bank.stages()],
        "telco": [("job1", stage, data) for stage, data in telco.stages()],
    }


def test_digests_are_per_stage_and_partner_and_hold_no_content() -> None:
    rows = _run()
    stages = [stage for _, stage, _ in rows["bank"]]
    assert stages == ["psi", "load"]
    psi = rows["bank"][0][2]
    assert psi["sent.telco.messages"] == 2 and psi["received.telco.messages"] == 1
    assert psi["bytes_sent"] == len(b"alpha") + len(b"beta")
    text = repr(rows)
    assert "alpha" not in text and "beta" not in text


def test_matching_runs_pass_and_an_altered_message_is_flagged() -> None:
    assert cross_check_stages(_run()) == []
    problems = cross_check_stages(_run(tamper=True))
    assert len(problems) == 1
    party, message = problems[0]
    assert party == "bank" and "stage psi" in message and "message_mismatch" in message

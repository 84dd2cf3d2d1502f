"""Email through a real SMTP server on 127.0.0.1: delivered once, re-sent after a crash with
the same Message-ID, retried through 4xx and outages, failed at once on 5xx."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from tests.messaging.conftest import free_port, time_passes


def _enqueue(key: str = "rule:12:event:9876:action:2", **kw):
    from rapport.messaging.services import message_enqueue

    data = {"to": ["maria.rossi@example.com"], "subject": "Your offer", "body": "Hello Maria"}
    data.update(kw)
    return message_enqueue(kind="email", key=key, source="rule:12", **data)


def test_an_email_is_delivered_with_a_message_id_derived_from_its_key(db, mail_to):
    from rapport.messaging.delivery import messages_deliver
    from rapport.messaging.services import message_id_for

    message = _enqueue(html="<p>Hello <b>Maria</b></p>")
    assert messages_deliver() == 1
    message.refresh_from_db()
    assert message.status == "sent"
    assert message.sent_at is not None
    assert message.attempts == 1
    [mail] = mail_to.messages
    assert mail["Message-ID"] == message.message_id == message_id_for(message.key)
    assert mail["To"] == "maria.rossi@example.com"
    assert mail["From"] == "crm@example.com"
    assert mail["Subject"] == "Your offer"
    assert mail["Auto-Submitted"] == "auto-generated"
    assert mail.is_multipart()  # text and HTML
    assert messages_deliver() == 0  # nothing left: not sent twice


def test_enqueueing_the_same_key_twice_queues_one_message(db, mail_to):
    from rapport.messaging.delivery import messages_deliver
    from rapport.messaging.models import OutgoingMessage

    first = _enqueue()
    second = _enqueue(subject="A different subject")
    assert first.pk == second.pk
    assert OutgoingMessage.objects.count() == 1
    messages_deliver()
    assert len(mail_to.messages) == 1


def test_a_rolled_back_transaction_queues_nothing(db):
    from rapport.messaging.models import OutgoingMessage

    class Rollback(Exception):
        pass

    def enqueue_then_fail() -> None:
        with transaction.atomic():
            _enqueue()
            raise Rollback

    with pytest.raises(Rollback):
        enqueue_then_fail()
    assert not OutgoingMessage.objects.exists()


def test_a_send_killed_in_flight_is_sent_again_with_the_same_message_id(db, mail_to):
    from rapport.messaging.delivery import messages_deliver
    from rapport.messaging.models import OutgoingMessage

    message = _enqueue()
    messages_deliver()
    # The worker died after the server accepted the mail but before it marked the row sent:
    # the row is still "sending" and its lease has run out.
    OutgoingMessage.objects.filter(pk=message.pk).update(
        status="sending",
        claimed_by="dead-worker:1",
        lease_until=timezone.now() - timedelta(seconds=1),
        sent_at=None,
    )
    assert messages_deliver() == 1
    message.refresh_from_db()
    assert message.status == "sent"
    assert message.attempts == 2
    assert [m["Message-ID"] for m in mail_to.messages] == [message.message_id] * 2


def test_a_message_another_worker_is_still_sending_is_left_alone(db, mail_to):
    from rapport.messaging.delivery import messages_deliver
    from rapport.messaging.models import OutgoingMessage

    message = _enqueue()
    OutgoingMessage.objects.filter(pk=message.pk).update(
        status="sending", claimed_by="live", lease_until=timezone.now() + timedelta(minutes=5)
    )
    assert messages_deliver() == 0
    assert mail_to.messages == []


def test_a_claim_is_taken_once_and_a_stale_worker_cannot_mark_a_reclaimed_message(db, mail_to):
    from rapport.messaging.delivery import _mark_sent, messages_claim
    from rapport.messaging.models import OutgoingMessage

    message = _enqueue()
    [mine] = messages_claim()
    assert messages_claim() == []  # the conditional UPDATE: nobody else gets it
    # My lease runs out; another worker claims it again.
    OutgoingMessage.objects.filter(pk=message.pk).update(
        lease_until=timezone.now() - timedelta(seconds=1)
    )
    [theirs] = messages_claim()
    assert theirs.claimed_by != mine.claimed_by
    _mark_sent(mine, "late")  # the stale worker's mark changes nothing
    message.refresh_from_db()
    assert (message.status, message.claimed_by) == ("sending", theirs.claimed_by)


def test_a_server_answering_451_and_421_for_a_while_gets_the_email_once(db, mail_to):
    from rapport.messaging.delivery import messages_deliver

    mail_to.data_replies = ["451 4.3.0 Try again later", "421 4.7.0 Too busy, closing"]
    message = _enqueue()
    messages_deliver()
    message.refresh_from_db()
    assert (message.status, message.attempts) == ("pending", 1)
    assert "451" in message.last_error
    assert message.next_attempt_at > timezone.now()
    assert messages_deliver() == 0  # waiting for its backoff
    time_passes()
    messages_deliver()
    message.refresh_from_db()
    assert (message.status, message.attempts) == ("pending", 2)
    assert "421" in message.last_error
    time_passes()
    messages_deliver()
    message.refresh_from_db()
    assert message.status == "sent"
    assert len(mail_to.messages) == 1


def test_backoff_doubles_up_to_its_cap(db, channels):
    from rapport.messaging.delivery import backoff

    cfg = channels(retry_base_seconds=30, retry_max_seconds=600)
    assert [backoff(cfg, n).total_seconds() for n in (1, 2, 3, 4, 5, 6, 12)] == [
        30,
        60,
        120,
        240,
        480,
        600,
        600,
    ]


def test_an_absent_server_is_retried_then_the_message_fails_and_the_admin_sees_it(
    db, channels, admin_user, client_for
):
    from django.urls import reverse

    from rapport.core.models import OutboxEvent
    from rapport.messaging.delivery import messages_deliver

    channels(
        smtp_host="127.0.0.1",
        smtp_port=free_port(),  # nothing listens there
        max_attempts=3,
        retry_base_seconds=1,
        retry_max_seconds=5,
    )
    message = _enqueue()
    other = _enqueue(key="rule:12:event:9877:action:2")
    waits = []
    for _attempt in range(3):
        messages_deliver()
        message.refresh_from_db()
        if message.status == "pending":
            waits.append((message.next_attempt_at - timezone.now()).total_seconds())
        time_passes()
    message.refresh_from_db()
    other.refresh_from_db()
    assert (message.status, message.attempts) == ("failed", 3)
    assert other.status == "failed"
    assert "Gave up after 3 attempts" in message.last_error
    assert "Connection" in message.last_error or "refused" in message.last_error.lower()
    assert waits[0] < waits[1] <= 2.5  # 1 s, then 2 s
    assert OutboxEvent.objects.filter(name="message.failed", object_id=message.pk).exists()
    page = client_for(admin_user).get(reverse("message-list") + "?status=failed")
    assert page.status_code == 200
    assert f'id="message-{message.pk}"' in page.content.decode()
    assert "Retry now" in page.content.decode()


def test_a_permanent_550_rejection_fails_the_message_at_once(db, mail_to):
    from rapport.messaging.delivery import messages_deliver

    mail_to.rcpt_replies = ["550 5.1.1 No such user"]
    message = _enqueue(to=["nobody@example.com"])
    messages_deliver()
    message.refresh_from_db()
    assert (message.status, message.attempts) == ("failed", 1)
    assert "550" in message.last_error
    assert mail_to.messages == []


def test_retry_now_sends_a_failed_message_again(db, mail_to, admin_user):
    from rapport.messaging.delivery import messages_deliver
    from rapport.messaging.services import message_retry

    mail_to.data_replies = ["554 5.7.1 Rejected for now"]
    message = _enqueue()
    messages_deliver()
    message.refresh_from_db()
    assert message.status == "failed"
    message_retry(actor=admin_user, message=message)
    messages_deliver()
    message.refresh_from_db()
    assert message.status == "sent"
    assert len(mail_to.messages) == 1


def test_a_batch_of_emails_shares_smtp_connections(db, mail_to):
    from rapport.messaging.delivery import BATCH, messages_deliver

    for n in range(120):
        _enqueue(key=f"bulk:{n}", to=[f"client{n}@example.com"])
    assert messages_deliver() == 120
    assert len(mail_to.messages) == 120
    assert len({m["Message-ID"] for m in mail_to.messages}) == 120
    assert len(mail_to.peers) <= -(-120 // BATCH)  # one connection per batch


def test_without_an_smtp_server_emails_are_written_to_the_log(db, caplog):
    from rapport.messaging.delivery import messages_deliver

    message = _enqueue()
    with caplog.at_level("INFO", logger="rapport.messaging"):
        messages_deliver()
    message.refresh_from_db()
    assert message.status == "sent"
    assert "no SMTP server" in message.provider_response
    assert "Hello Maria" in caplog.text


def test_the_delivery_sweep_is_a_periodic_job(db):
    from rapport.core.tasks import PERIODIC

    assert PERIODIC["rapport.messaging_sweep"] == ("rapport.messaging.jobs.deliver_due", 1)


def test_a_committed_enqueue_nudges_the_worker_which_sends_it(
    db, mail_to, settings, monkeypatch, django_capture_on_commit_callbacks
):
    from django_q.conf import Conf

    settings.OUTBOX_NUDGE = True
    monkeypatch.setattr(Conf, "SYNC", True)  # django-q2 runs the job in this process
    with django_capture_on_commit_callbacks(execute=True) as callbacks, transaction.atomic():
        message = _enqueue(key="nudge:1")
        _enqueue(key="nudge:2")
    assert len(callbacks) == 1  # one nudge per transaction
    message.refresh_from_db()
    assert message.status == "sent"
    assert len(mail_to.messages) == 2

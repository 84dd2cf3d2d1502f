"""Pipeline settings as an administrator meets them: kinds, stages, limits, order, removal."""

from __future__ import annotations

import pytest

from rapport.core.errors import FieldErrors, PermissionDenied
from rapport.core.models import AuditEntry
from rapport.sales.models import Pipeline, Stage
from rapport.sales.selectors import stages_of
from rapport.sales.services import (
    deal_lose,
    deal_move,
    loss_reason_save,
    pipeline_save,
    stage_delete,
    stage_save,
    stages_reorder,
)


def test_an_admin_creates_pipelines_of_each_kind(admin_user):
    for kind in ("strict", "free", "stageless"):
        pipeline = pipeline_save(actor=admin_user, data={"name": f"P {kind}", "kind": kind})
        assert pipeline.kind == kind
    assert AuditEntry.objects.filter(object_type="pipeline", action="create").count() == 3
    with pytest.raises(FieldErrors) as exc:
        pipeline_save(actor=admin_user, data={"name": " ", "kind": "chaotic"})
    assert set(exc.value.errors) == {"name", "kind"}


def test_a_non_admin_cannot_change_pipelines(alice, bob, pipelines):
    strict = pipelines["strict"]
    stage = pipelines["strict_stages"][0]
    for user in (alice, bob):
        for call in (
            lambda u=user: pipeline_save(actor=u, data={"name": "Mine", "kind": "free"}),
            lambda u=user: pipeline_save(actor=u, data={"name": "Renamed"}, pipeline=strict),
            lambda u=user: stage_save(actor=u, pipeline=strict, data={"name": "Extra"}),
            lambda u=user: stage_save(actor=u, pipeline=strict, stage=stage, data={"name": "X"}),
            lambda u=user: stages_reorder(
                actor=u, pipeline=strict, stage_ids=[s.pk for s in pipelines["strict_stages"]]
            ),
            lambda u=user: stage_delete(actor=u, stage=stage),
            lambda u=user: loss_reason_save(actor=u, name="Too slow"),
        ):
            with pytest.raises(PermissionDenied):
                call()
    strict.refresh_from_db()
    assert strict.name == "New clients"
    assert [s.name for s in stages_of(strict)] == ["Lead", "Qualified", "Proposal", "Contract"]


def test_a_pipeline_kind_is_fixed_once_it_has_deals(admin_user, alice, pipelines, make_deal):
    free = pipelines["free"]
    pipeline_save(actor=admin_user, pipeline=free, data={"kind": "strict"})
    free.refresh_from_db()
    assert free.kind == "strict"
    make_deal(alice, "Pins the kind", pipeline=free)
    with pytest.raises(FieldErrors) as exc:
        pipeline_save(actor=admin_user, pipeline=free, data={"kind": "free"})
    assert list(exc.value.errors) == ["kind"]
    free.refresh_from_db()
    assert free.kind == "strict"


def test_a_stage_time_limit_is_a_positive_number_of_hours_or_empty(admin_user, pipelines):
    free = pipelines["free"]
    for bad in (0, -5, "two days", "1.5"):
        with pytest.raises(FieldErrors) as exc:
            stage_save(
                actor=admin_user, pipeline=free, data={"name": "Waiting", "time_limit_hours": bad}
            )
        assert list(exc.value.errors) == ["time_limit_hours"]
    assert not Stage.objects.filter(name="Waiting").exists()
    stage = stage_save(
        actor=admin_user, pipeline=free, data={"name": "Waiting", "time_limit_hours": "72"}
    )
    assert stage.time_limit_hours == 72
    stage = stage_save(actor=admin_user, pipeline=free, stage=stage, data={"time_limit_hours": ""})
    assert stage.time_limit_hours is None
    assert stage.time_limit is None


def test_a_new_stage_goes_last_and_other_fields_are_checked(admin_user, pipelines):
    free = pipelines["free"]
    stage = stage_save(actor=admin_user, pipeline=free, data={"name": "Signed"})
    assert [s.name for s in stages_of(free)] == ["New", "Talks", "Offer", "Signed"]
    with pytest.raises(FieldErrors) as exc:
        stage_save(
            actor=admin_user,
            pipeline=free,
            stage=stage,
            data={"color": "red", "probability": 150, "required_fields": ["amount", "shoe_size"]},
        )
    assert set(exc.value.errors) == {"color", "probability", "required_fields"}
    assert "shoe_size" in exc.value.errors["required_fields"][0]
    stage.refresh_from_db()
    assert (stage.color, stage.probability, stage.required_fields) == ("#4f7cff", 0, [])


def test_a_stageless_pipeline_takes_no_stages(admin_user, pipelines):
    with pytest.raises(FieldErrors):
        stage_save(actor=admin_user, pipeline=pipelines["stageless"], data={"name": "Step"})
    assert not Stage.objects.filter(pipeline=pipelines["stageless"]).exists()


def test_a_stage_is_edited_only_through_its_own_pipeline(admin_user, pipelines):
    foreign = pipelines["strict_stages"][0]
    with pytest.raises(FieldErrors):
        stage_save(actor=admin_user, pipeline=pipelines["free"], stage=foreign, data={"name": "X"})
    foreign.refresh_from_db()
    assert foreign.name == "Lead"


def test_stages_are_reordered(admin_user, pipelines):
    free = pipelines["free"]
    new, talks, offer = pipelines["free_stages"]
    stages_reorder(actor=admin_user, pipeline=free, stage_ids=[offer.pk, new.pk, talks.pk])
    assert [s.name for s in stages_of(free)] == ["Offer", "New", "Talks"]
    audit = AuditEntry.objects.filter(object_type="pipeline", object_id=free.pk).latest("id")
    assert audit.changes["stage_order"] == [None, [offer.pk, new.pk, talks.pk]]
    for wrong in (
        [offer.pk, new.pk],
        [offer.pk, new.pk, talks.pk, pipelines["strict_stages"][0].pk],
    ):
        with pytest.raises(FieldErrors):
            stages_reorder(actor=admin_user, pipeline=free, stage_ids=wrong)
    assert [s.name for s in stages_of(free)] == ["Offer", "New", "Talks"]


def test_reordering_changes_what_a_strict_pipeline_calls_a_skip(
    admin_user, alice, pipelines, make_deal
):
    strict = pipelines["strict"]
    lead, qualified, proposal, contract = pipelines["strict_stages"]
    stages_reorder(
        actor=admin_user,
        pipeline=strict,
        stage_ids=[lead.pk, contract.pk, qualified.pk, proposal.pk],
    )
    deal = make_deal(alice, "After reorder", pipeline=strict)
    deal = deal_move(actor=alice, deal=deal, stage=contract, version=deal.version)
    assert deal.stage == contract


def test_a_stage_with_open_deals_cannot_be_removed(admin_user, alice, pipelines, make_deal):
    talks = pipelines["free_stages"][1]
    make_deal(alice, "Sitting in talks", stage_id=talks.pk)
    with pytest.raises(FieldErrors) as exc:
        stage_delete(actor=admin_user, stage=talks)
    assert list(exc.value.errors) == ["stage"]
    talks.refresh_from_db()
    assert talks.is_active


def test_a_used_stage_is_deactivated_not_deleted(admin_user, alice, pipelines, make_deal):
    free = pipelines["free"]
    talks = pipelines["free_stages"][1]
    deal = make_deal(alice, "Passed through talks", stage_id=talks.pk)
    deal_lose(actor=alice, deal=deal, reason_id=pipelines["price"].pk, version=deal.version)
    # when
    stage_delete(actor=admin_user, stage=talks)
    # then the history keeps its name, but the board and new moves no longer offer it
    talks.refresh_from_db()
    assert talks.is_active is False
    assert [s.name for s in stages_of(free)] == ["New", "Offer"]
    assert deal.stage_changes.filter(to_stage=talks).exists()
    other = make_deal(alice, "New one")
    with pytest.raises(FieldErrors):
        deal_move(actor=alice, deal=other, stage=talks, version=other.version)
    audit = AuditEntry.objects.filter(object_type="stage", object_id=talks.pk).latest("id")
    assert audit.changes == {"is_active": [True, False]}


def test_an_unused_stage_is_deleted(admin_user, pipelines):
    stage = stage_save(actor=admin_user, pipeline=pipelines["free"], data={"name": "Never used"})
    stage_delete(actor=admin_user, stage=stage)
    assert not Stage.objects.filter(pk=stage.pk).exists()
    assert AuditEntry.objects.filter(object_type="stage", action="delete").count() == 1


def test_loss_reasons_are_unique_ignoring_case(admin_user, pipelines):
    with pytest.raises(FieldErrors):
        loss_reason_save(actor=admin_user, name="price TOO high")
    reason = loss_reason_save(actor=admin_user, name="  Timing  ")
    assert reason.name == "Timing"


def test_a_retired_loss_reason_is_no_longer_accepted(admin_user, alice, pipelines, make_deal):
    price = loss_reason_save(
        actor=admin_user, name="Price too high", reason=pipelines["price"], is_active=False
    )
    deal = make_deal(alice, "Too dear")
    with pytest.raises(FieldErrors):
        deal_lose(actor=alice, deal=deal, reason_id=price.pk, version=deal.version)


def test_a_deal_cannot_be_created_in_an_inactive_pipeline(admin_user, alice, pipelines, make_deal):
    pipeline_save(actor=admin_user, pipeline=pipelines["free"], data={"is_active": False})
    with pytest.raises(FieldErrors) as exc:
        make_deal(alice, "Nowhere", pipeline=pipelines["free"])
    assert list(exc.value.errors) == ["pipeline_id"]
    assert Pipeline.objects.get(pk=pipelines["free"].pk).is_active is False

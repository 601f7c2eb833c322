"""Cron schedules on a controlled clock (experiments.scheduling): the sweep and the tick are called
with the time the test chooses, against the real database. Fire times across daylight saving time
in a named zone, Forbid and Allow, startingDeadlineSeconds, historyLimit, paused schedules, and a
policy refusal that is an event, not a crash. No task is published (publish=False, and no commit).
The same with a real beat and worker: test_schedules_e2e.py."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from experiments import scheduling, services
from experiments.models import Event, Run, Schedule
from injector.models import Environment
from tenants.models import AuditEntry, Policy

from .runs_harness import SYSTEM, host_experiment, hosts_environment

pytestmark = pytest.mark.django_db


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def make(world: Any, cron: str, *, now: datetime, time_zone: str = "UTC", **fields: Any) -> Schedule:
    """A schedule of the experiment `cpu` against the hosts environment `lab`, armed as if made at `now`."""
    if not Environment.objects.filter(tenant=world.acme, name="lab").exists():
        hosts_environment(world.acme, agents=2)
        host_experiment(world.acme, "cpu", duration="30s")
    schedule = services.save_schedule(SYSTEM, world.acme, {
        "name": fields.pop("name", "tick"), "cron": cron, "time_zone": time_zone, "experiment": "cpu",
        "environment": "lab", **fields,
    })
    scheduling.arm(schedule, now)
    schedule.save()
    return schedule


def ticks(schedule: Schedule, start: datetime, end: datetime, step: timedelta) -> list[datetime]:
    """Sweep every `step` from start to end; the ticks claimed, in order."""
    claimed, now = [], start
    while now <= end:
        claimed += [tick for pk, tick in scheduling.sweep(now, publish=False) if pk == schedule.pk]
        now += step
    return claimed


def reasons(schedule: Schedule) -> list[str]:
    return list(Event.objects.filter(object_type="schedule", object_id=str(schedule.uuid))
                .order_by("created_at", "id").values_list("reason", flat=True))


def test_a_daily_tick_in_berlin_crosses_both_daylight_saving_changes(world: Any) -> None:
    # 02:30 does not exist on 2026-03-29 in Berlin (02:00 -> 03:00): it fires once, at 03:00 CEST.
    schedule = make(world, "30 2 * * *", now=utc(2026, 3, 27, 12), time_zone="Europe/Berlin")
    spring = ticks(schedule, utc(2026, 3, 27, 12), utc(2026, 3, 31, 12), timedelta(minutes=15))
    assert spring == [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1, 0), utc(2026, 3, 30, 0, 30),
                      utc(2026, 3, 31, 0, 30)]
    # 02:30 happens twice on 2026-10-25 (03:00 -> 02:00): it fires once, at the first.
    scheduling.arm(schedule, utc(2026, 10, 23, 12))
    schedule.save()
    autumn = ticks(schedule, utc(2026, 10, 23, 12), utc(2026, 10, 26, 12), timedelta(minutes=15))
    assert autumn == [utc(2026, 10, 24, 0, 30), utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]
    # The detail's next five fire times say the same.
    assert scheduling.next_times(schedule, 3, after=utc(2026, 3, 28, 12)) == spring[1:4]


def test_an_hourly_tick_fires_in_both_passes_of_the_repeated_hour(world: Any) -> None:
    # 2026-10-25 in Berlin runs from 22:00 UTC the day before to 23:00 UTC: 25 hours.
    schedule = make(world, "0 * * * *", now=utc(2026, 10, 24, 21, 59), time_zone="Europe/Berlin")
    day = ticks(schedule, utc(2026, 10, 24, 21, 59), utc(2026, 10, 25, 22, 59), timedelta(minutes=30))
    assert len(day) == 25 and day == sorted(set(day))  # 25 hours that day, each once


def test_every_two_seconds_and_a_tick_claimed_once_however_often_it_is_swept(world: Any) -> None:
    start = utc(2026, 11, 26, 12)
    schedule = make(world, "@every 2s", now=start)
    first = scheduling.sweep(start + timedelta(milliseconds=100), publish=False)
    again = scheduling.sweep(start + timedelta(milliseconds=200), publish=False)
    assert first == [(schedule.pk, start + timedelta(seconds=2))] and again == []  # claimed ahead, once
    later = ticks(schedule, start + timedelta(seconds=1), start + timedelta(seconds=9), timedelta(seconds=1))
    assert later == [start + timedelta(seconds=s) for s in (4, 6, 8, 10)]


def test_forbid_skips_a_tick_while_a_run_of_the_schedule_is_active_and_allow_does_not(world: Any) -> None:
    now = timezone.now()
    forbid = make(world, "* * * * *", now=now, name="forbid")
    assert scheduling.fire(forbid.pk, now) == "fired"
    run = Run.objects.get(schedule=forbid)
    assert run.origin == Run.Origin.SCHEDULE and run.phase == Run.Phase.PENDING
    assert scheduling.fire(forbid.pk, now + timedelta(minutes=1)) == "skipped"
    assert Run.objects.filter(schedule=forbid).count() == 1
    assert reasons(forbid)[-2:] == ["ScheduleFired", "ScheduleSkipped"]

    Run.objects.filter(pk=run.pk).update(phase=Run.Phase.FINISHED)  # it ended: the next tick runs
    assert scheduling.fire(forbid.pk, now + timedelta(minutes=2)) == "fired"

    allow = make(world, "* * * * *", now=now, name="allow", concurrency_policy="Allow")
    assert [scheduling.fire(allow.pk, now), scheduling.fire(allow.pk, now)] == ["fired", "fired"]
    assert Run.objects.filter(schedule=allow, phase=Run.Phase.PENDING).count() == 2


def test_a_tick_missed_by_more_than_the_starting_deadline_is_skipped_with_an_event(world: Any) -> None:
    start = utc(2026, 11, 26, 12)
    schedule = make(world, "*/5 * * * *", now=start, starting_deadline_seconds=60)
    # The platform was down from 12:04 to 12:07: the 12:05 tick is 120 s late at the first sweep.
    assert scheduling.sweep(utc(2026, 11, 26, 12, 7), publish=False) == []
    schedule.refresh_from_db()
    assert schedule.next_fire_at == utc(2026, 11, 26, 12, 10)
    assert reasons(schedule) == ["MissedSchedule"]
    assert "missed by 120 s, more than startingDeadlineSeconds 60" in Event.objects.get(reason="MissedSchedule").message
    # Within the deadline, a late tick still fires (once).
    assert scheduling.sweep(utc(2026, 11, 26, 12, 10, 30), publish=False) == [(schedule.pk, utc(2026, 11, 26, 12, 10))]
    # And the tick itself refuses to start later than the deadline (a task that sat in a queue).
    assert scheduling.fire(schedule.pk, utc(2026, 11, 26, 12, 10), now=utc(2026, 11, 26, 12, 12)) == "missed"
    assert not Run.objects.filter(schedule=schedule).exists()


def test_without_a_starting_deadline_many_missed_ticks_fire_once(world: Any) -> None:
    start = utc(2026, 11, 26, 12)
    schedule = make(world, "* * * * *", now=start)
    claimed = scheduling.sweep(utc(2026, 11, 26, 12, 30, 10), publish=False)
    assert claimed == [(schedule.pk, utc(2026, 11, 26, 12, 1))]
    schedule.refresh_from_db()
    assert schedule.next_fire_at == utc(2026, 11, 26, 12, 31)
    assert "29 ticks" in Event.objects.get(reason="MissedSchedule").message


def test_history_limit_drops_the_oldest_ended_runs_from_the_schedule_but_keeps_them_archived(world: Any) -> None:
    schedule = make(world, "* * * * *", now=timezone.now(), history_limit=2, concurrency_policy="Allow")
    started = []
    for minute in range(4):
        assert scheduling.fire(schedule.pk, timezone.now()) == "fired"
        run = Run.objects.filter(schedule=schedule).order_by("-id").first()
        Run.objects.filter(pk=run.pk).update(phase=Run.Phase.FINISHED, created_at=timezone.now()
                                             + timedelta(seconds=minute))
        started.append(run.pk)
    assert scheduling.fire(schedule.pk, timezone.now()) == "fired"  # the fifth, still active
    on_list = set(Run.objects.filter(schedule=schedule).values_list("pk", flat=True))
    assert on_list >= set(started[2:]) and not on_list & set(started[:2])
    assert Run.objects.filter(pk__in=started, phase=Run.Phase.FINISHED).count() == 4  # all archived still
    assert "HistoryTrimmed" in reasons(schedule)


def test_a_paused_schedule_does_not_fire_and_resuming_counts_from_now(world: Any) -> None:
    start = utc(2026, 11, 26, 12)
    schedule = make(world, "* * * * *", now=start)
    services.set_paused(SYSTEM, schedule, True)
    schedule.refresh_from_db()
    assert schedule.next_fire_at is None and scheduling.next_times(schedule) == []
    assert ticks(schedule, start, start + timedelta(minutes=5), timedelta(seconds=30)) == []
    assert scheduling.fire(schedule.pk, start + timedelta(minutes=1)) == "paused"  # a tick claimed before pausing
    services.set_paused(SYSTEM, schedule, False)
    schedule.refresh_from_db()
    assert timezone.now() < schedule.next_fire_at <= timezone.now() + timedelta(minutes=1)
    assert reasons(schedule) == ["SchedulePaused", "ScheduleResumed"]
    assert AuditEntry.objects.filter(action__in=["schedule.pause", "schedule.resume"]).count() == 2


def test_a_policy_refusal_at_a_tick_is_an_event_and_writes_no_run(world: Any) -> None:
    schedule = make(world, "* * * * *", now=timezone.now())
    elsewhere = [d for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
                 if d != timezone.now().strftime("%a").lower()][:1]
    Policy.objects.update_or_create(tenant=world.acme, defaults={
        "allowed_windows": [{"days": elsewhere, "start": "00:00", "end": "23:59", "timezone": "UTC"}]})
    assert scheduling.fire(schedule.pk, timezone.now()) == "refused"
    assert not Run.objects.filter(schedule=schedule).exists()
    refusal = Event.objects.get(reason="ScheduleRefused")
    assert "time-window" in refusal.message and refusal.type == Event.Type.WARNING


def test_bad_schedules_are_refused_naming_the_field_and_change_nothing(world: Any) -> None:
    hosts_environment(world.acme, agents=1)
    host_experiment(world.acme, "cpu")
    base = {"name": "bad", "cron": "* * * * *", "experiment": "cpu", "environment": "lab"}
    for change, field in (({"cron": "61 * * * *"}, "cron"), ({"time_zone": "Mars/Base"}, "time_zone"),
                          ({"experiment": "nope"}, "experiment"), ({"environment": "nope"}, "environment"),
                          ({"experiment": None}, "experiment")):
        with pytest.raises(ValidationError) as error:
            services.save_schedule(SYSTEM, world.acme, base | change)
        assert field in error.value.message_dict, (change, error.value.message_dict)
    assert not Schedule.objects.exists() and not AuditEntry.objects.filter(action="schedule.create").exists()

from django.urls import path

from rapport.activities import views

urlpatterns = [
    path("interactions/", views.interaction_list, name="interaction-list"),
    path("interactions/export/", views.interaction_export, name="interaction-export"),
    path("tasks/", views.task_list, name="task-list"),
    path("tasks/export/", views.task_export, name="task-export"),
    path("tasks/new/", views.task_create, name="task-create"),
    path("tasks/<int:task_id>/", views.task_detail, name="task-detail"),
    path("tasks/<int:task_id>/edit/", views.task_edit, name="task-edit"),
    path("tasks/<int:task_id>/status/", views.task_status, name="task-status"),
    path("calendar/", views.calendar, name="calendar"),
    path("calendar/move/", views.calendar_move, name="calendar-move"),
    path("calendar/plan/", views.calendar_plan, name="calendar-plan"),
    path("calendar/feeds/", views.calendar_feed_create, name="calendar-feed-create"),
    path(
        "calendar/feeds/<int:feed_id>/revoke/",
        views.calendar_feed_revoke,
        name="calendar-feed-revoke",
    ),
    path("calendar/feed/<str:token>.ics", views.calendar_feed, name="calendar-feed"),
    path("notifications/", views.notification_list, name="notifications"),
    path("notifications/read/", views.notifications_read, name="notifications-read"),
    path("timeline/<str:object_type>/<int:object_id>/", views.timeline, name="timeline"),
    path("timeline/<str:object_type>/<int:object_id>/log/", views.quick_log, name="timeline-log"),
    path(
        "timeline/<str:object_type>/<int:object_id>/task/", views.quick_task, name="timeline-task"
    ),
]

# CalDAV two-way sync (the section at the bottom of the calendar page).
from rapport.activities import caldav_views  # noqa: E402

urlpatterns += [
    path("calendar/caldav/connect/", caldav_views.caldav_connect, name="caldav-connect"),
    path("calendar/caldav/disconnect/", caldav_views.caldav_disconnect, name="caldav-disconnect"),
    path("calendar/caldav/sync/", caldav_views.caldav_sync_now, name="caldav-sync"),
]

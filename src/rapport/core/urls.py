from django.urls import path

from rapport.core import health, views

urlpatterns = [
    path("", views.home, name="home"),
    path("health/live", health.live, name="health-live"),
    path("health/ready", health.ready, name="health-ready"),
    path("search/", views.search, name="search"),
    path(
        "files/<str:object_type>/<int:object_id>/add/",
        views.attachment_add,
        name="attachment-add",
    ),
    path("files/<int:attachment_id>/", views.attachment_download, name="attachment-download"),
    path("files/<int:attachment_id>/remove/", views.attachment_remove, name="attachment-remove"),
    path("settings/recycle-bin/", views.recycle_bin, name="recycle-bin"),
    path("settings/custom-fields/", views.custom_fields, name="custom-fields"),
    path(
        "settings/custom-fields/<int:field_id>/delete/",
        views.custom_field_delete,
        name="custom-field-delete",
    ),
]

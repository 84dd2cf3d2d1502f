from django.urls import path

from rapport.dedupe import views

urlpatterns = [
    path("duplicates/", views.duplicate_list, name="duplicate-list"),
    path("duplicates/scan/", views.duplicate_scan, name="duplicate-scan"),
    path(
        "duplicates/<str:object_type>/<int:a_id>/<int:b_id>/",
        views.duplicate_merge,
        name="duplicate-merge",
    ),
    path(
        "duplicates/<str:object_type>/<int:a_id>/<int:b_id>/dismiss/",
        views.duplicate_dismiss,
        name="duplicate-dismiss",
    ),
    path("duplicates/merges/<int:merge_id>/undo/", views.merge_undo, name="merge-undo"),
]

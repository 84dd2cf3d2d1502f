from django.urls import path

from rapport.imports import views

urlpatterns = [
    path("imports/", views.import_list, name="import-list"),
    path("imports/<int:run_id>/", views.import_detail, name="import-detail"),
    path("imports/<int:run_id>/progress/", views.import_progress, name="import-progress"),
    path("imports/<int:run_id>/report.<str:fmt>", views.import_report, name="import-report"),
    path("imports/<int:run_id>/undo/", views.import_undo, name="import-undo"),
]

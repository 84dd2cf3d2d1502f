from django.urls import path

from rapport.routing import views

urlpatterns = [
    path("routing/rules/", views.routing_rules, name="routing-rules"),
    path("routing/rules/<int:rule_id>/", views.routing_rule_edit, name="routing-rule-edit"),
    path("routing/rules/<int:rule_id>/move/", views.routing_rule_move, name="routing-rule-move"),
    path(
        "routing/rules/<int:rule_id>/delete/",
        views.routing_rule_delete,
        name="routing-rule-delete",
    ),
    path("absences/", views.absence_list, name="absence-list"),
    path("absences/<int:absence_id>/", views.absence_detail, name="absence-detail"),
    path("absences/<int:absence_id>/cancel/", views.absence_cancel, name="absence-cancel"),
    path(
        "absences/<int:absence_id>/take-back/",
        views.absence_take_back,
        name="absence-take-back",
    ),
]

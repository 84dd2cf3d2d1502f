from django.urls import path

from rapport.automations import views

urlpatterns = [
    path("settings/automations/", views.rule_list, name="rule-list"),
    path("settings/automations/new/", views.rule_form, name="rule-create"),
    path("settings/automations/reorder/", views.rules_reorder, name="rules-reorder"),
    path("settings/automations/log/", views.run_list, name="rule-runs"),
    path("settings/automations/<int:rule_id>/", views.rule_form, name="rule-edit"),
    path("settings/automations/<int:rule_id>/toggle/", views.rule_toggle, name="rule-toggle"),
    path("settings/automations/<int:rule_id>/delete/", views.rule_delete, name="rule-delete"),
    path("settings/automations/<int:rule_id>/test/", views.rule_test, name="rule-test"),
]

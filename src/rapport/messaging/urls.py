from django.urls import path

from rapport.messaging import views

urlpatterns = [
    path("settings/messaging/", views.channel_settings, name="messaging-settings"),
    path("settings/messaging/test-email/", views.test_email, name="messaging-test-email"),
    path("messages/", views.message_list, name="message-list"),
    path("messages/<int:message_id>/retry/", views.message_retry, name="message-retry"),
    path("message-templates/", views.template_list, name="message-template-list"),
    path("message-templates/new/", views.template_create, name="message-template-create"),
    path("message-templates/preview/", views.template_preview, name="message-template-preview"),
    path("message-templates/<int:template_id>/", views.template_edit, name="message-template-edit"),
    path(
        "message-templates/<int:template_id>/delete/",
        views.template_delete,
        name="message-template-delete",
    ),
]

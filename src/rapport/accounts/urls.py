from django.contrib.auth import views as auth_views
from django.urls import path

from rapport.accounts import views

urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("profile/", views.profile, name="profile"),
    path("profile/tokens/<int:token_id>/revoke/", views.token_revoke, name="token-revoke"),
    path("settings/users/", views.users, name="users"),
    path("settings/users/<int:user_id>/", views.user_edit, name="user-edit"),
    path("settings/teams/", views.teams, name="teams"),
    path("settings/roles/", views.roles, name="roles"),
    path("settings/roles/<int:role_id>/", views.roles, name="role-edit"),
]

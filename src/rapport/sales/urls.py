from django.urls import path

from rapport.sales import views

urlpatterns = [
    path("leads/", views.lead_list, name="lead-list"),
    path("leads/export/", views.lead_export, name="lead-export"),
    path("leads/new/", views.lead_create, name="lead-create"),
    path("leads/<int:lead_id>/", views.lead_detail, name="lead-detail"),
    path("leads/<int:lead_id>/edit/", views.lead_edit, name="lead-edit"),
    path("leads/<int:lead_id>/convert/", views.lead_convert, name="lead-convert"),
    path("leads/<int:lead_id>/reject/", views.lead_reject, name="lead-reject"),
    path("deals/", views.deal_list, name="deal-list"),
    path("deals/export/", views.deal_export, name="deal-export"),
    path("deals/new/", views.deal_create, name="deal-create"),
    path("deals/<int:deal_id>/", views.deal_detail, name="deal-detail"),
    path("deals/<int:deal_id>/edit/", views.deal_edit, name="deal-edit"),
    path("deals/<int:deal_id>/move/", views.deal_move, name="deal-move"),
    path("deals/<int:deal_id>/win/", views.deal_win, name="deal-win"),
    path("deals/<int:deal_id>/lose/", views.deal_lose, name="deal-lose"),
    path("deals/<int:deal_id>/reopen/", views.deal_reopen, name="deal-reopen"),
    path("deals/<int:deal_id>/delete/", views.deal_delete, name="deal-delete"),
    path("deals/<int:deal_id>/restore/", views.deal_restore, name="deal-restore"),
    path("board/", views.board, name="board"),
    path("board/<int:pipeline_id>/", views.pipeline_board, name="pipeline-board"),
    path("board/column/<int:stage_id>/", views.board_column, name="board-column"),
    path("reports/funnel/", views.funnel, name="funnel"),
    path("reports/funnel/export/", views.funnel_export, name="funnel-export"),
    path("settings/pipelines/", views.pipelines_page, name="pipelines"),
    path("settings/pipelines/<int:pipeline_id>/", views.pipeline_edit, name="pipeline-edit"),
    path("settings/loss-reasons/", views.loss_reasons, name="loss-reasons"),
]

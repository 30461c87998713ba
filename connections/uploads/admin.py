"""Django admin for uploads (their VINs are in `support.admin`)."""

from django.contrib import admin

from connections.models import Upload, UploadSummary
from connections.web.admin import ReadOnlyAdmin


@admin.register(Upload)
class UploadAdmin(admin.ModelAdmin):
    list_display = ["pk", "fleet", "source_name", "state", "created_by", "created_at"]
    list_filter = ["state", "fleet"]
    search_fields = ["source_name", "fleet__name"]
    readonly_fields = ["state", "version", "submitted_at", "eligibility"]
    date_hierarchy = "created_at"


@admin.register(UploadSummary)
class UploadSummaryAdmin(ReadOnlyAdmin):
    """The live table's stored counts, remade whenever the version moves."""

    list_display = ["upload", "version"]

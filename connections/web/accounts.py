"""Accounts by e-mail: password reset through Django's own views, its message
sent by the worker (the outbox); and an admin inviting someone to a fleet,
whose invitation lets them choose their password (the same confirm page)."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.forms import PasswordResetForm
from django.contrib.auth.models import User
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from connections.mail import compose
from connections.mail.tasks import post
from connections.models import Membership
from connections.web.access import visible_fleet


class OutboxPasswordResetForm(PasswordResetForm):
    """Django's reset form, its e-mail queued in the outbox for the worker."""

    def send_mail(
        self,
        subject_template_name,
        email_template_name,
        context,
        from_email,
        to_email,
        html_email_template_name=None,
    ) -> None:
        subject = " ".join(render_to_string(subject_template_name, context).split())
        text = render_to_string(email_template_name, context)
        key = f"password_reset:{context['uid']}:{context['token']}"
        rendered = compose.Rendered(subject, text, "", "en")
        post(key, "password_reset", to_email, rendered, user=context["user"])


class InviteForm(forms.Form):
    email = forms.EmailField(label="E-mail address")
    username = forms.CharField(max_length=150, help_text="What they will log in with.")

    def clean_username(self) -> str:
        username = self.cleaned_data["username"].strip()
        if User.objects.filter(username=username).exists():
            raise forms.ValidationError("Someone already has this username.")
        return username


def invite(request: HttpRequest, slug: str) -> HttpResponse:
    """An admin invites a new manager to the fleet: the account is made without a
    password, and the e-mail's link lets the person choose one."""
    fleet = visible_fleet(request, slug)
    if not request.user.is_superuser:
        raise PermissionDenied("Only administrators invite people.")
    form = InviteForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            user = User(username=form.cleaned_data["username"], email=form.cleaned_data["email"])
            user.set_unusable_password()
            user.save()
            Membership.objects.create(user=user, fleet=fleet)
            _send_invitation(request, user, fleet)
        messages.success(request, f"Invitation sent to {user.email}.")
        return redirect(fleet)
    return render(request, "connections/web/invite.html", {"fleet": fleet, "form": form})


def _send_invitation(request: HttpRequest, user: User, fleet) -> None:
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    path = reverse("password_reset_confirm", args=[uid, token])
    context = {
        "fleet": fleet,
        "user": user,
        "inviter": request.user,
        "url": request.build_absolute_uri(path),
    }
    post(
        f"invite:{user.pk}:{fleet.pk}",
        "invite",
        user.email,
        compose.render("invite", context, "en"),
        user=user,
        reply_to=request.user.email,
    )

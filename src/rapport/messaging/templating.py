"""Email and SMS templates, rendered in a sandboxed Jinja2 environment.

A template is typed by an administrator and rendered with record data a client may have typed.
``ImmutableSandboxedEnvironment`` refuses attribute access to Python internals (``__class__``,
``__globals__``, ``mro`` ...), unsafe methods and changes to the data passed in; on top of it
this environment refuses
oversized repetition and padding (``'x' * 10**9``, ``'x'|center(10**9)``) and output larger
than ``MAX_OUTPUT``, so a template cannot exhaust the worker's memory.
"""

from __future__ import annotations

import datetime as dt
import functools
import operator
from collections.abc import Callable, Mapping
from typing import Any

from django.utils.translation import gettext as _
from jinja2.exceptions import SecurityError, TemplateError, TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from rapport.core.errors import FieldErrors

MAX_OUTPUT = 256 * 1024
MAX_NUMBER_ARG = 10_000
MAX_REPEAT = 100_000


def _check_args(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    for value in (*args, *kwargs.values()):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_NUMBER_ARG:
            raise SecurityError(_("A number in the template is too large."))


def _guard(func: Callable[..., Any]) -> Callable[..., Any]:
    """A filter that refuses huge numeric arguments (``center(10**9)``, ``indent(10**9)``)."""
    pass_arg = getattr(func, "jinja_pass_arg", None)  # pass_context / pass_environment
    skip = 2 if pass_arg is not None else 1  # (context,) value: not arguments

    def guarded(*args: Any, **kwargs: Any) -> Any:
        _check_args(args[skip:], kwargs)
        return func(*args, **kwargs)

    if pass_arg is not None:
        guarded.jinja_pass_arg = pass_arg  # type: ignore[attr-defined]
    return guarded


class _Environment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator_name: str, left: Any, right: Any) -> Any:
        if operator_name == "**":
            if isinstance(right, int | float) and abs(right) > 64:
                raise SecurityError(_("A power in the template is too large."))
            return operator.pow(left, right)
        size = 0
        if isinstance(left, str | list | tuple) and isinstance(right, int):
            size = len(left) * right
        elif isinstance(right, str | list | tuple) and isinstance(left, int):
            size = len(right) * left
        if size > MAX_REPEAT:
            raise SecurityError(_("A repetition in the template is too large."))
        return operator.mul(left, right)

    def call(self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: PYI063
        _check_args(args, kwargs)
        return super().call(__context, __obj, *args, **kwargs)


def _environment() -> _Environment:
    env = _Environment(autoescape=False, keep_trailing_newline=True)
    env.filters = {name: _guard(func) for name, func in env.filters.items()}
    return env


ENV = _environment()


@functools.lru_cache(maxsize=1024)
def _compiled(text: str) -> Any:
    """A rule renders the same few texts for every event: compile each once."""
    return ENV.from_string(text)


def template_check(text: str, field: str) -> None:
    """Raise FieldErrors naming ``field`` if ``text`` is not a valid template."""
    try:
        ENV.parse(text or "")
    except TemplateSyntaxError as exc:
        raise FieldErrors.single(
            field,
            _("The template has an error on line %(line)s: %(error)s")
            % {"line": exc.lineno, "error": exc.message or ""},
        ) from exc


def render(template_text: str, context: Mapping[str, Any], *, field: str = "body") -> str:
    """Render ``template_text`` in the sandbox. A template that tries to reach Python
    internals, or fails, raises FieldErrors naming ``field`` (nothing is evaluated unsafely)."""
    try:
        output: str = _compiled(template_text or "").render(dict(context))
    except SecurityError as exc:
        raise FieldErrors.single(
            field, _("The template uses something that is not allowed: %(error)s") % {"error": exc}
        ) from exc
    except TemplateError as exc:
        raise FieldErrors.single(
            field, _("The template cannot be rendered: %(error)s") % {"error": exc}
        ) from exc
    except (ArithmeticError, TypeError, ValueError) as exc:
        raise FieldErrors.single(
            field, _("The template cannot be rendered: %(error)s") % {"error": exc}
        ) from exc
    if len(output) > MAX_OUTPUT:
        raise FieldErrors.single(field, _("The rendered text is too long."))
    return output


# What a template can use when previewed; the automation engine passes the same names.
SAMPLE_CONTEXT: dict[str, Any] = {
    "client": {
        "name": "Maria Rossi",
        "first_name": "Maria",
        "last_name": "Rossi",
        "email": "maria.rossi@example.com",
        "phone": "+390212345678",
        "company": "Rossi Trasporti S.r.l.",
    },
    "deal": {"title": "Fleet tracking, 40 vehicles", "amount": "120000.00", "stage": "Proposal"},
    "manager": {"name": "Alice Smith", "email": "alice@example.com", "phone": "+74951112233"},
    "today": dt.date(2026, 3, 2),
}

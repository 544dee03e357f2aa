"""The HTML of web-form leads: the ready-to-embed form (`GET /forms/lead`) and the thank-you page.

Plain HTML that works without JavaScript. The form posts to `{CRM_PUBLIC_URL}/leads`, so a copy
of it on another site posts to the gateway too. Everything taken from the request is escaped.
"""

from __future__ import annotations

from html import escape

from aiohttp import web

from crm.domain.text import MAX_NAME
from crm.services.intake import MAX_MESSAGE

# Pages with no scripts, images or frames of their own; `form-action` is left open on purpose:
# the form posts to the gateway, whose answer may redirect to the site's own `_next` page.
CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'"

_STYLE = """
body { font: 16px/1.4 system-ui, sans-serif; margin: 0; padding: 1rem; color: #222; }
form { max-width: 32rem; }
label { display: block; margin: 0 0 .8rem; }
label span { display: block; font-weight: 600; margin-bottom: .2rem; }
input, textarea { box-sizing: border-box; width: 100%; padding: .5rem; font: inherit;
  border: 1px solid #bbb; border-radius: 4px; }
textarea { min-height: 7rem; resize: vertical; }
button { padding: .6rem 1.4rem; font: inherit; border: 0; border-radius: 4px;
  background: #1a6ed8; color: #fff; cursor: pointer; }
.hint { color: #666; font-size: .9rem; margin: -.4rem 0 .8rem; }
.trap { position: absolute; left: -10000px; top: auto; width: 1px; height: 1px; overflow: hidden; }
"""


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n"
        f"<body>\n{body}\n</body>\n</html>\n"
    )


def html(text: str, status: int = 200) -> web.Response:
    return web.Response(
        text=text, status=status, content_type="text/html", headers={"Content-Security-Policy": CSP}
    )


def form_page(action: str, *, source: str | None = None, next_url: str | None = None) -> str:
    """The lead form; `source` and `_next` ride along as hidden fields when given."""
    hidden = ""
    if source:
        hidden += f'<input type="hidden" name="source" value="{escape(source)}">\n'
    if next_url:
        hidden += f'<input type="hidden" name="_next" value="{escape(next_url)}">\n'
    body = f"""<form method="post" action="{escape(action)}" accept-charset="utf-8">
{hidden}<label><span>Your name</span>
<input name="name" autocomplete="name" maxlength="{MAX_NAME}"></label>
<label><span>Phone</span>
<input name="phone" type="tel" autocomplete="tel" inputmode="tel" maxlength="64"></label>
<label><span>E-mail</span>
<input name="email" type="email" autocomplete="email" maxlength="320"></label>
<p class="hint">A phone number or an e-mail address, so that we can answer you.</p>
<label><span>Message</span>
<textarea name="message" maxlength="{MAX_MESSAGE}"></textarea></label>
<div class="trap" aria-hidden="true"><label>Leave this field empty
<input name="_gotcha" tabindex="-1" autocomplete="off"></label></div>
<button type="submit">Send</button>
</form>"""
    return _page("Contact us", body)


def thanks_page() -> str:
    body = "<h1>Thank you!</h1>\n<p>We have your message and will get back to you soon.</p>"
    return _page("Thank you", body)

import base64
import hashlib
import re

import pytest
from fastapi.testclient import TestClient

from app.http.docs_policy import docs_policy


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_docs_pages_carry_a_policy_that_allows_only_their_own_inline_script(
    client: TestClient, path: str
) -> None:
    r = client.get(path)
    policy = r.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "'unsafe-inline'" not in policy.split("style-src")[0]
    scripts = re.findall(r"<script>(.*?)</script>", r.text, re.DOTALL)
    for script in scripts:
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in policy
    assert policy.count("'sha256-") == len(scripts)


def test_policy_hashes_each_inline_script() -> None:
    page = b"<script>a()</script><p>x</p><script>\nb()\n</script><script src='/x.js'></script>"
    policy = docs_policy(page)
    for script in (b"a()", b"\nb()\n"):
        assert "'sha256-" + base64.b64encode(hashlib.sha256(script).digest()).decode() in policy
    assert policy.count("sha256-") == 2

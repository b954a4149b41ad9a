from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.db import connection

pytestmark = pytest.mark.django_db


def test_the_pgvector_extension_is_installed() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        row = cursor.fetchone()
    assert row is not None
    major, minor = (int(part) for part in row[0].split(".")[:2])
    assert (major, minor) >= (0, 8)


def test_vectors_compare_by_cosine_distance() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT '[1,0,0]'::vector <=> '[0,1,0]'::vector, '[1,1,0]'::vector <=> '[2,2,0]'::vector"
        )
        orthogonal, parallel = cursor.fetchone()
    assert orthogonal == pytest.approx(1.0)
    assert parallel == pytest.approx(0.0, abs=1e-6)


def test_the_server_is_postgresql_18() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version_num")
        assert int(cursor.fetchone()[0]) >= 180000


def test_dumpdata_backs_up_the_database_including_the_roles() -> None:
    out = io.StringIO()
    call_command("dumpdata", "--natural-foreign", stdout=out)
    groups = {row["fields"]["name"] for row in json.loads(out.getvalue()) if row["model"] == "auth.group"}
    assert groups == {"employee", "policy_admin", "auditor"}

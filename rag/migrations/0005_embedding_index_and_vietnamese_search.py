from __future__ import annotations

import django.contrib.postgres.indexes
import django.contrib.postgres.search
import pgvector.django.vector
from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

SEARCH = django.contrib.postgres.search

# unaccent is a trusted extension (PostgreSQL >= 13): the database owner may create it.
VIETNAMESE_CONFIG_SQL = """
CREATE EXTENSION IF NOT EXISTS unaccent;
CREATE TEXT SEARCH CONFIGURATION policydesk_vi (COPY = simple);
ALTER TEXT SEARCH CONFIGURATION policydesk_vi
    ALTER MAPPING FOR hword, hword_part, word WITH unaccent, simple;
"""


def record_existing_vectors(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    """Vectors stored before this migration can only be all-MiniLM-L6-v2's: say so."""
    Chunk = apps.get_model("rag", "Chunk")
    EmbeddingIndex = apps.get_model("rag", "EmbeddingIndex")
    if Chunk.objects.exists():
        EmbeddingIndex.objects.create(model="all-MiniLM-L6-v2", dimensions=384)


def search_vector(config: str) -> SEARCH.CombinedSearchVector:
    return SEARCH.CombinedSearchVector(
        SEARCH.CombinedSearchVector(
            SEARCH.SearchVector("document_title", config=config, weight="A"),
            "||",
            SEARCH.SearchVector("heading_path", config=config, weight="A"),
            SEARCH.SearchConfig(config),
        ),
        "||",
        SEARCH.SearchVector("text", config=config, weight="B"),
        SEARCH.SearchConfig(config),
    )


class Migration(migrations.Migration):
    dependencies = [("rag", "0004_document_title_embedding")]

    operations = [
        migrations.RunSQL(VIETNAMESE_CONFIG_SQL, "DROP TEXT SEARCH CONFIGURATION IF EXISTS policydesk_vi;"),
        migrations.CreateModel(
            name="EmbeddingIndex",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("model", models.CharField(max_length=100)),
                ("dimensions", models.PositiveIntegerField()),
                ("target_model", models.CharField(blank=True, default="", max_length=100)),
                ("updated_at", models.DateTimeField(auto_now=True)),
            ],
        ),
        migrations.RunPython(record_existing_vectors, migrations.RunPython.noop),
        migrations.AddField(
            model_name="chunk",
            name="next_embedding",
            field=pgvector.django.vector.VectorField(blank=True, dimensions=384, null=True),
        ),
        migrations.AddField(
            model_name="document",
            name="next_title_embedding",
            field=pgvector.django.vector.VectorField(blank=True, dimensions=384, null=True),
        ),
        # A generated column cannot be altered in place: drop it and its index, add the
        # language it now reads, backfill it, then add the column and the index again.
        migrations.RemoveIndex(model_name="chunk", name="chunk_search_gin"),
        migrations.RemoveField(model_name="chunk", name="search_vector"),
        migrations.AddField(
            model_name="chunk",
            name="lang",
            field=models.CharField(blank=True, default="", max_length=8),
        ),
        migrations.RunSQL(
            "UPDATE rag_chunk c SET lang = d.lang FROM rag_document d WHERE d.id = c.document_id AND d.lang <> ''",
            migrations.RunSQL.noop,
        ),
        migrations.AddField(
            model_name="chunk",
            name="search_vector",
            field=models.GeneratedField(
                db_persist=True,
                expression=models.Case(
                    models.When(lang="vi", then=search_vector("policydesk_vi")),
                    default=search_vector("english"),
                    output_field=SEARCH.SearchVectorField(),
                ),
                output_field=SEARCH.SearchVectorField(),
            ),
        ),
        migrations.AddIndex(
            model_name="chunk",
            index=django.contrib.postgres.indexes.GinIndex(fields=["search_vector"], name="chunk_search_gin"),
        ),
        migrations.AddIndex(
            model_name="chunk",
            index=django.contrib.postgres.indexes.GinIndex(
                condition=models.Q(("lang", "vi")), fields=["search_vector"], name="chunk_search_vi_gin"
            ),
        ),
    ]

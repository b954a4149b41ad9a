from __future__ import annotations

import django.contrib.postgres.indexes
import django.contrib.postgres.search
from django.db import migrations, models

SEARCH = django.contrib.postgres.search


class Migration(migrations.Migration):
    dependencies = [("rag", "0002_documents_and_chunks")]

    # A generated column cannot be altered in place: drop its index and the column, add the
    # title, backfill it, then add the column (computed for existing rows) and its index again.
    operations = [
        migrations.RemoveIndex(model_name="chunk", name="chunk_search_gin"),
        migrations.RemoveField(model_name="chunk", name="search_vector"),
        migrations.AddField(
            model_name="chunk",
            name="document_title",
            field=models.CharField(blank=True, default="", max_length=300),
        ),
        migrations.RunSQL(
            "UPDATE rag_chunk c SET document_title = left(d.title, 300) FROM rag_document d WHERE d.id = c.document_id",
            migrations.RunSQL.noop,
        ),
        migrations.AddField(
            model_name="chunk",
            name="search_vector",
            field=models.GeneratedField(
                db_persist=True,
                expression=SEARCH.CombinedSearchVector(
                    SEARCH.CombinedSearchVector(
                        SEARCH.SearchVector("document_title", config="english", weight="A"),
                        "||",
                        SEARCH.SearchVector("heading_path", config="english", weight="A"),
                        SEARCH.SearchConfig("english"),
                    ),
                    "||",
                    SEARCH.SearchVector("text", config="english", weight="B"),
                    SEARCH.SearchConfig("english"),
                ),
                output_field=SEARCH.SearchVectorField(),
            ),
        ),
        migrations.AddIndex(
            model_name="chunk",
            index=django.contrib.postgres.indexes.GinIndex(fields=["search_vector"], name="chunk_search_gin"),
        ),
    ]

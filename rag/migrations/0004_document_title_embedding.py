from __future__ import annotations

from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps
from pgvector.django import VectorField


def embed_existing_titles(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    """Documents ingested before titles were embedded get theirs now (a few ms per title)."""
    Document = apps.get_model("rag", "Document")
    pending = list(Document.objects.filter(title_embedding__isnull=True).only("id", "title"))
    if not pending:
        return  # a fresh database: no model to load
    from rag.embedding import load_embedder

    vectors = load_embedder("minilm").embed_documents([d.title for d in pending])
    for document, vector in zip(pending, vectors, strict=True):
        document.title_embedding = vector
    Document.objects.bulk_update(pending, ["title_embedding"], batch_size=500)


class Migration(migrations.Migration):
    dependencies = [("rag", "0003_chunk_document_title")]

    operations = [
        migrations.AddField(
            model_name="document",
            name="title_embedding",
            field=VectorField(blank=True, dimensions=384, null=True),
        ),
        migrations.RunPython(embed_existing_titles, migrations.RunPython.noop),
    ]

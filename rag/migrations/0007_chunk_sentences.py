import django.db.models.deletion
import pgvector.django
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("rag", "0006_chunk_sentence_vectors"),
    ]

    operations = [
        migrations.CreateModel(
            name="ChunkSentence",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("ordinal", models.PositiveSmallIntegerField()),
                ("embedding", pgvector.django.HalfVectorField(dimensions=384)),
                (
                    "chunk",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="sentences", to="rag.chunk"
                    ),
                ),
                (
                    "document",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to="rag.document"
                    ),
                ),
            ],
            options={
                "ordering": ["chunk_id", "ordinal"],
                "indexes": [
                    pgvector.django.HnswIndex(
                        ef_construction=64,
                        fields=["embedding"],
                        m=16,
                        name="sentence_embedding_hnsw",
                        opclasses=["halfvec_cosine_ops"],
                    ),
                    models.Index(fields=["document"], name="sentence_document"),
                ],
            },
        ),
    ]

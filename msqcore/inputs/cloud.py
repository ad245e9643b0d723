"""Cloud object stores for EXTERN: ``s3``, ``google``, ``azureStorage`` and legacy ``azure``.

All of them go through ``pyarrow.fs`` (S3FileSystem, GcsFileSystem, AzureFileSystem). A
filesystem is described by a small picklable dict (``fs``) built on the controller from
the input source spec; each process builds the filesystem once per distinct dict.

Endpoints for local emulators: S3 takes Druid's ``endpointConfig.url``; Google honours
``STORAGE_EMULATOR_HOST`` (as Google's own client libraries do); Azure honours the server's
``MSQ_AZURE_BLOB_ENDPOINT`` (``http://host:port``: Azurite-style path URLs
``/ACCOUNT/CONTAINER/PATH``), standing in for Druid's ``druid.azure.*`` endpoint settings.
"""
from __future__ import annotations

import json
import os
import re
import urllib.parse
from dataclasses import dataclass
from datetime import timedelta

from msqcore.errors import InvalidInput, UnknownError

_SCHEMES = {"s3": ("s3",), "google": ("gs",), "azureStorage": ("azureStorage",), "azure": ("azure",)}


@dataclass
class CloudObject:
    uri: str
    size: int | None
    fs: dict
    path: str  # "bucket/key" (Azure: "container/path") inside the filesystem
    system: dict[str, str]


# --- validation --------------------------------------------------------------------------


def validate(spec: dict) -> None:
    kind = spec["type"]
    given = [k for k in ("uris", "prefixes", "objects") if spec.get(k)]
    if len(given) != 1:
        raise InvalidInput("Exactly one of uris, prefixes, or objects must be specified")
    key = given[0]
    values = spec[key]
    if not isinstance(values, list):
        raise InvalidInput(f"[{key}] must be an array")
    for value in values:
        if key == "objects":
            if not isinstance(value, dict) or not value.get("bucket") or "path" not in value:
                raise InvalidInput("Each of [objects] must have a [bucket] and a [path]")
            if kind == "azureStorage" and not str(value["path"]).lstrip("/").partition("/")[2]:
                # azureStorage objects: bucket is the storage account, path is CONTAINER/PATH
                raise InvalidInput(f"Invalid object path [{value['path']}] for inputSource type [azureStorage]: "
                                   "expected CONTAINER/PATH (the bucket is the storage account)")
        else:
            _split_uri(kind, value)
    glob = spec.get("objectGlob")
    if glob is not None:
        if not isinstance(glob, str):
            raise InvalidInput("objectGlob must be a string")
        java_glob(glob)
    from msqcore.inputs.sources import _check_password_provider
    props = spec.get("properties") or {}
    if not isinstance(props, dict):
        raise InvalidInput("properties must be a JSON object")
    if kind == "s3":
        for name in ("accessKeyId", "secretAccessKey", "sessionToken"):
            _check_password_provider(props.get(name), name)
        if bool(props.get("accessKeyId")) != bool(props.get("secretAccessKey")):
            raise InvalidInput("S3 properties need both accessKeyId and secretAccessKey, or neither")
        endpoint = spec.get("endpointConfig")
        if endpoint is not None and (not isinstance(endpoint, dict) or not isinstance(endpoint.get("url", ""), str)):
            raise InvalidInput("endpointConfig must be an object with a [url]")
    elif kind == "azureStorage":
        for name in ("sharedAccessStorageToken", "key", "appRegistrationClientSecret"):
            _check_password_provider(props.get(name), name)
    elif kind == "azure" and not os.environ.get("AZURE_STORAGE_ACCOUNT"):
        raise InvalidInput("The [azure] inputSource needs a storage account configured on the server "
                           "(druid.azure.account; here the AZURE_STORAGE_ACCOUNT environment variable). "
                           "Use [azureStorage] with azureStorage://ACCOUNT/CONTAINER/PATH URIs instead.")


def _split_uri(kind: str, uri) -> tuple[str, str, str]:
    """``scheme://bucket/key`` → (account, bucket, key); account only for azureStorage."""
    if not isinstance(uri, str) or "://" not in uri:
        raise InvalidInput(f"Invalid URI [{uri}] for inputSource type [{kind}]")
    scheme, rest = uri.split("://", 1)
    if scheme not in _SCHEMES[kind] and scheme.lower() not in [s.lower() for s in _SCHEMES[kind]]:
        raise InvalidInput(f"Invalid URI scheme [{uri}] must be [{_SCHEMES[kind][0]}]")
    account = ""
    if kind == "azureStorage":
        account, _, rest = rest.partition("/")
        if not account:
            raise InvalidInput(f"Invalid URI [{uri}]: expected azureStorage://ACCOUNT/CONTAINER/PATH")
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise InvalidInput(f"Invalid URI [{uri}]: no bucket")
    return account, bucket, key


def java_glob(glob: str) -> re.Pattern:
    """Java's ``glob:`` PathMatcher: ``*`` stays within a path segment, ``**`` crosses them,
    ``?``, ``[...]`` (``[!...]`` negates) and ``{a,b}``."""
    out, i, group = [], 0, 0
    while i < len(glob):
        c = glob[i]
        if c == "*":
            if glob.startswith("**", i):
                out.append(".*")
                i += 2
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "{":
            out.append("(?:")
            group += 1
        elif c == "}" and group:
            out.append(")")
            group -= 1
        elif c == "," and group:
            out.append("|")
        elif c == "[":
            j = glob.find("]", i + 2)
            if j < 0:
                raise InvalidInput(f"Invalid objectGlob [{glob}]: unclosed [")
            cls = glob[i + 1:j].replace("\\", "\\\\")
            if cls.startswith("!"):
                cls = "^" + cls[1:]
            out.append(f"[{cls}]")
            i = j + 1
            continue
        elif c == "\\" and i + 1 < len(glob):
            out.append(re.escape(glob[i + 1]))
            i += 2
            continue
        else:
            out.append(re.escape(c))
        i += 1
    if group:
        raise InvalidInput(f"Invalid objectGlob [{glob}]: unclosed {{")
    return re.compile("".join(out) + r"\Z", re.S)


# --- filesystems -------------------------------------------------------------------------


def fs_config(spec: dict, account: str = "") -> dict:
    """The picklable description of the filesystem an input source reads through."""
    from msqcore.inputs.sources import resolve_password
    kind = spec["type"]
    props = spec.get("properties") or {}
    if kind == "s3":
        client = spec.get("clientConfig") or {}
        endpoint = spec.get("endpointConfig") or {}
        scheme = str(client.get("protocol") or "https").lower()
        override = None
        url = endpoint.get("url")
        if url:
            parsed = urllib.parse.urlsplit(url if "://" in url else f"{scheme}://{url}")
            override, scheme = parsed.netloc, parsed.scheme
        # An explicit region keeps the SDK from looking one up (which can mean a metadata call).
        region = endpoint.get("signingRegion") or os.environ.get("AWS_REGION") or \
            os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        cfg = {"type": "s3", "region": region, "scheme": scheme, "endpoint_override": override,
               "access_key": resolve_password(props.get("accessKeyId")),
               "secret_key": resolve_password(props.get("secretAccessKey")),
               "session_token": resolve_password(props.get("sessionToken")),
               "role_arn": props.get("assumeRoleArn"), "external_id": props.get("assumeRoleExternalId")}
        proxy = spec.get("proxyConfig") or {}
        if proxy.get("host"):
            cfg["proxy_options"] = {"scheme": str(proxy.get("protocol") or "http"), "host": proxy["host"],
                                    "port": int(proxy.get("port") or 80), "username": proxy.get("username"),
                                    "password": resolve_password(proxy.get("password"))}
        return cfg
    if kind == "google":
        cfg = {"type": "gcs"}
        emulator = os.environ.get("STORAGE_EMULATOR_HOST")
        if emulator:
            parsed = urllib.parse.urlsplit(emulator if "://" in emulator else f"http://{emulator}")
            cfg.update(endpoint_override=parsed.netloc, scheme=parsed.scheme, anonymous=True)
        return cfg
    # azureStorage (account in the URI) and legacy azure (account from the server's config)
    server_key = None if account else os.environ.get("AZURE_STORAGE_KEY")
    cfg = {"type": "azure", "account_name": account or os.environ.get("AZURE_STORAGE_ACCOUNT", ""),
           "account_key": resolve_password(props.get("key")) or server_key,
           "sas_token": _sas_token(resolve_password(props.get("sharedAccessStorageToken"))),
           "client_id": props.get("appRegistrationClientId"),
           "client_secret": resolve_password(props.get("appRegistrationClientSecret")),
           "tenant_id": props.get("tenantId")}
    endpoint = os.environ.get("MSQ_AZURE_BLOB_ENDPOINT")
    if endpoint:
        parsed = urllib.parse.urlsplit(endpoint)
        # Both services at the emulator: the Data Lake endpoint is probed too.
        cfg.update(blob_storage_authority=parsed.netloc, blob_storage_scheme=parsed.scheme,
                   dfs_storage_authority=parsed.netloc, dfs_storage_scheme=parsed.scheme)
    return cfg


def _sas_token(token: str | None) -> str | None:
    # Azure shows SAS tokens with or without the leading "?"; pyarrow appends the token
    # to the URL as given, so it needs the "?".
    return "?" + token.lstrip("?") if token else None


_FILESYSTEMS: dict[str, object] = {}


def filesystem(cfg: dict):
    """Build (once per process) the pyarrow filesystem a config describes."""
    key = json.dumps(cfg, sort_keys=True)
    fs = _FILESYSTEMS.get(key)
    if fs is not None:
        return fs
    import pyarrow.fs as pafs
    args = {k: v for k, v in cfg.items() if k != "type" and v is not None}
    try:
        if cfg["type"] == "s3":
            fs = pafs.S3FileSystem(connect_timeout=10, request_timeout=60,
                                   retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=3), **args)
        elif cfg["type"] == "gcs":
            fs = pafs.GcsFileSystem(retry_time_limit=timedelta(seconds=20), **args)
        else:
            fs = pafs.AzureFileSystem(**args)
    except (OSError, ValueError, TypeError) as e:
        raise UnknownError(f"Cannot set up the {cfg['type']} filesystem: {e}") from None
    _FILESYSTEMS[key] = fs
    return fs


def _failure(uri: str, e: BaseException) -> UnknownError:
    text = str(e)
    if isinstance(e, FileNotFoundError) or "NoSuchKey" in text or "does not exist" in text.lower():
        return UnknownError(f"Cannot read input [{uri}]: the object does not exist ({text})")
    return UnknownError(f"Cannot read input [{uri}]: {text}")


# --- listing -----------------------------------------------------------------------------


def list_objects(spec: dict) -> list[CloudObject]:
    kind = spec["type"]
    glob = java_glob(spec["objectGlob"]) if spec.get("objectGlob") else None
    scheme = {"s3": "s3", "google": "gs", "azureStorage": "azureStorage", "azure": "azure"}[kind]
    locations: list[tuple[str, str, str]] = []  # (account, bucket, key)
    if spec.get("objects") and kind == "azureStorage":  # {"bucket": ACCOUNT, "path": "CONTAINER/PATH"}
        locations = [(o["bucket"], *str(o["path"]).lstrip("/").split("/", 1)) for o in spec["objects"]]
    elif spec.get("objects"):
        locations = [("", o["bucket"], str(o["path"]).lstrip("/")) for o in spec["objects"]]
    elif spec.get("uris"):
        locations = [_split_uri(kind, u) for u in spec["uris"]]
    out: list[CloudObject] = []
    if locations:
        for account, bucket, key in locations:
            if glob is not None and not glob.match(key):
                continue
            fs_cfg = fs_config(spec, account)
            uri = _uri(scheme, account, bucket, key)
            info = _info(fs_cfg, f"{bucket}/{key}", uri)
            out.append(CloudObject(uri, info.size, fs_cfg, f"{bucket}/{key}", _system(uri, bucket, key)))
        return out
    for prefix in spec["prefixes"]:
        account, bucket, key_prefix = _split_uri(kind, prefix)
        fs_cfg = fs_config(spec, account)
        out.extend(_list_prefix(fs_cfg, scheme, account, bucket, key_prefix, glob, prefix))
    return out


def _uri(scheme: str, account: str, bucket: str, key: str) -> str:
    return f"{scheme}://{account + '/' if account else ''}{bucket}/{key}"


def _system(uri: str, bucket: str, key: str) -> dict[str, str]:
    return {"__file_uri": uri, "__file_bucket": bucket, "__file_path": key}


def _info(fs_cfg: dict, path: str, uri: str):
    import pyarrow.fs as pafs
    try:
        info = filesystem(fs_cfg).get_file_info(path)
    except (OSError, ValueError) as e:
        raise _failure(uri, e) from None
    if info.type == pafs.FileType.NotFound:
        raise UnknownError(f"Cannot read input [{uri}]: the object does not exist")
    if info.type != pafs.FileType.File:
        raise UnknownError(f"Cannot read input [{uri}]: not an object")
    return info


def _list_prefix(fs_cfg: dict, scheme: str, account: str, bucket: str, key_prefix: str, glob, prefix_uri: str):
    """Objects whose key starts with the prefix (a string prefix, as S3 lists it)."""
    import pyarrow.fs as pafs
    directory = key_prefix[: key_prefix.rfind("/") + 1] if "/" in key_prefix else ""
    base = f"{bucket}/{directory}".rstrip("/")
    try:
        infos = filesystem(fs_cfg).get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
    except (OSError, ValueError) as e:
        raise _failure(prefix_uri, e) from None
    out = []
    for info in sorted(infos, key=lambda i: i.path):
        if info.type != pafs.FileType.File or not info.size:  # skip directory markers and empty objects
            continue
        key = info.path[len(bucket) + 1:]
        if not key.startswith(key_prefix) or (glob is not None and not glob.match(key)):
            continue
        uri = _uri(scheme, account, bucket, key)
        out.append(CloudObject(uri, info.size, fs_cfg, info.path, _system(uri, bucket, key)))
    return out


# --- opening -----------------------------------------------------------------------------


def open_stream(fs_cfg: dict, path: str, uri: str):
    try:
        return filesystem(fs_cfg).open_input_stream(path, compression=None)
    except (OSError, ValueError) as e:
        raise _failure(uri, e) from None


def open_file(fs_cfg: dict, path: str, uri: str):
    try:
        return filesystem(fs_cfg).open_input_file(path)
    except (OSError, ValueError) as e:
        raise _failure(uri, e) from None

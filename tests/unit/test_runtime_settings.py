"""byoc_runtime.settings: SageMaker's container environment, read from a dict and checked."""

from __future__ import annotations

import pytest
from byoc_runtime.settings import SettingsError, from_env

MB = 1024 * 1024


def error_for(**env: str) -> str:
    with pytest.raises(SettingsError) as caught:
        from_env(env)
    return str(caught.value)


def test_defaults_with_an_empty_environment():
    s = from_env({})
    assert (s.port, s.safe_ports, s.workers, s.timeout_s) == (8080, None, 1, 50)
    assert s.max_payload_bytes == 6 * MB
    assert s.log_level == "INFO"
    # No declared types: the adapter decides what the server takes (front.py).
    assert s.accept_content_types == ()
    assert not hasattr(s, "response_content_type")  # the answer's own type is labelled


def test_image_defaults_come_from_byoc_default_variables():
    s = from_env({"BYOC_DEFAULT_TIMEOUT_S": "30", "BYOC_DEFAULT_MAX_PAYLOAD_MB": "20",
                  "BYOC_DEFAULT_WORKERS": "3"})
    assert (s.timeout_s, s.max_payload_bytes, s.workers) == (30, 20 * MB, 3)


def test_c08_sagemaker_variables_override_image_defaults():
    s = from_env({"BYOC_DEFAULT_TIMEOUT_S": "30", "SAGEMAKER_MODEL_SERVER_TIMEOUT": "45",
                  "BYOC_DEFAULT_MAX_PAYLOAD_MB": "20", "SAGEMAKER_MAX_PAYLOAD_IN_MB": "1",
                  "SAGEMAKER_MODEL_SERVER_WORKERS": "4"})
    assert (s.timeout_s, s.max_payload_bytes, s.workers) == (45, MB, 4)


def test_accept_content_types_are_split_and_lowercased():
    s = from_env({"BYOC_ACCEPT_CONTENT_TYPES": " Image/PNG, application/json,,"})
    assert s.accept_content_types == ("image/png", "application/json")


def test_c03_bind_to_port_sets_the_public_port():
    assert from_env({"SAGEMAKER_BIND_TO_PORT": "9090"}).port == 9090


def test_c03_blank_bind_to_port_means_8080():
    assert from_env({"SAGEMAKER_BIND_TO_PORT": "  "}).port == 8080


def test_c03_safe_port_range_is_parsed_inclusive():
    assert from_env({"SAGEMAKER_SAFE_PORT_RANGE": " 9000-9010 "}).safe_ports == (9000, 9010)


def test_c03_internal_ports_stay_in_the_range_and_skip_the_bind_port():
    s = from_env({"SAGEMAKER_BIND_TO_PORT": "9001", "SAGEMAKER_SAFE_PORT_RANGE": "9000-9005"})
    assert s.internal_ports(5) == [9000, 9002, 9003, 9004, 9005]


def test_c03_internal_ports_without_a_range_are_distinct_and_not_the_public_port():
    ports = from_env({"SAGEMAKER_BIND_TO_PORT": "8082"}).internal_ports(5)
    assert len(set(ports)) == 5 and 8082 not in ports


def test_too_narrow_range_is_an_error_naming_the_range():
    s = from_env({"SAGEMAKER_BIND_TO_PORT": "9001", "SAGEMAKER_SAFE_PORT_RANGE": "9000-9004"})
    with pytest.raises(SettingsError, match="SAGEMAKER_SAFE_PORT_RANGE 9000-9004 leaves fewer "
                                            "than 5 ports besides 9001"):
        s.internal_ports(5)


def test_too_many_internal_ports_without_a_range_is_a_settings_error():
    with pytest.raises(SettingsError):
        from_env({}).internal_ports(50)


@pytest.mark.parametrize("name, value, problem", [
    ("SAGEMAKER_BIND_TO_PORT", "http", "is not a whole number"),
    ("SAGEMAKER_BIND_TO_PORT", "80", "out of range 1024..65535"),
    ("SAGEMAKER_BIND_TO_PORT", "70000", "out of range"),
    ("SAGEMAKER_MODEL_SERVER_TIMEOUT", "1.5", "is not a whole number"),
    ("SAGEMAKER_MODEL_SERVER_TIMEOUT", "0", "out of range"),
    ("SAGEMAKER_MODEL_SERVER_WORKERS", "65", "out of range 1..64"),
    ("SAGEMAKER_MAX_PAYLOAD_IN_MB", "6MB", "is not a whole number"),
    ("SAGEMAKER_MAX_PAYLOAD_IN_MB", "2048", "out of range"),
    ("SAGEMAKER_SAFE_PORT_RANGE", "9000", "is not of the form LOW-HIGH"),
    ("SAGEMAKER_SAFE_PORT_RANGE", "9000:9010", "is not of the form LOW-HIGH"),
    ("SAGEMAKER_SAFE_PORT_RANGE", "9000-9010-9020", "is not of the form LOW-HIGH"),
    ("SAGEMAKER_SAFE_PORT_RANGE", "9010-9000", "is not a valid port range"),
    ("SAGEMAKER_SAFE_PORT_RANGE", "80-90", "is not a valid port range"),
])
def test_bad_value_names_its_variable(name, value, problem):
    message = error_for(**{name: value})
    assert message.startswith(f"{name}=") and problem in message


@pytest.mark.parametrize("name", ["BYOC_DEFAULT_TIMEOUT_S", "BYOC_DEFAULT_MAX_PAYLOAD_MB",
                                  "BYOC_DEFAULT_WORKERS"])
def test_bad_image_default_names_its_variable(name):
    assert name in error_for(**{name: "fifty"})


@pytest.mark.parametrize("env, level", [
    ({}, "INFO"),
    ({"BYOC_LOG_LEVEL": "debug"}, "DEBUG"),
    ({"SAGEMAKER_CONTAINER_LOG_LEVEL": "20"}, "INFO"),
    ({"SAGEMAKER_CONTAINER_LOG_LEVEL": "30"}, "WARNING"),
    ({"SAGEMAKER_CONTAINER_LOG_LEVEL": "error"}, "ERROR"),
    ({"BYOC_LOG_LEVEL": "WARNING", "SAGEMAKER_CONTAINER_LOG_LEVEL": "10"}, "WARNING"),
])
def test_c16_log_level_from_environment(env, level):
    assert from_env(env).log_level == level


@pytest.mark.parametrize("env", [{"BYOC_LOG_LEVEL": "chatty"},
                                 {"SAGEMAKER_CONTAINER_LOG_LEVEL": "5"}])
def test_bad_log_level_is_refused_with_the_allowed_ones(env):
    assert "is not one of DEBUG, INFO, WARNING, ERROR" in error_for(**env)


def test_bad_log_level_names_its_variable():
    assert "SAGEMAKER_CONTAINER_LOG_LEVEL" in error_for(SAGEMAKER_CONTAINER_LOG_LEVEL="5")

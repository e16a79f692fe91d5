# The Ansible role spark.inference.whisperx (roles/, playbooks/, plugins/): its tests and molecule scenarios.
# Both run against GPU-host stand-ins (scripts/gpu-host.sh) that drive this machine's Docker engine and install
# the real service, so the role's image build shares the layer cache `make image` filled (a build of ~2 s).
.PHONY: role-tests molecule

TEST_STAGES += role-tests molecule

role-tests: venv collection gpu-host-image models image ## the role's playbook tests: bad input, preflight, failures, ansible-runner
	@$(STAGE) role-tests $(BIN)/pytest -m integration tests/role

molecule: venv collection gpu-host-image models image ## molecule scenarios default + rollback (CPU image, tiny.en)
	@$(STAGE) molecule $(BIN)/molecule test --all

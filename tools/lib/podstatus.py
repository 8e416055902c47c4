"""A pod's status as the kubelet writes it when the pod's containers end:
the one place the e2e tools (tools/cluster's pod runner, the agent
runtime's --finish-via pod-status) make it, since kwok runs no containers.
Standard library only; pure."""
import time

# agent-sandbox's annotation naming a Sandbox's pod when it is not the
# Sandbox's own name (sigs.k8s.io/agent-sandbox api/v1beta1/sandbox_types.go,
# SandboxPodNameAnnotation).
POD_NAME_ANNOTATION = "agents.x-k8s.io/pod-name"


def sandbox_pod_name(sandbox):
    """The name of the pod of a Sandbox object (upstream resolvePodName)."""
    md = sandbox.get("metadata") or {}
    return (md.get("annotations") or {}).get(POD_NAME_ANNOTATION) or md.get("name")


def terminal(pod, phase, exit_code=None, reason=None, now=None):
    """pod (an object as read) with a terminal status: phase Succeeded or
    Failed, every container terminated with exit_code (0 / 1 by phase),
    Ready and ContainersReady False."""
    if phase not in ("Succeeded", "Failed"):
        raise ValueError("terminal phase: Succeeded or Failed, not %r" % phase)
    if exit_code is None:
        exit_code = 0 if phase == "Succeeded" else 1
    now = now or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    term = {"exitCode": exit_code, "reason": reason or (
        "Completed" if exit_code == 0 else "Error"), "startedAt": now, "finishedAt": now}
    statuses = [{"name": c["name"], "image": c.get("image", ""), "imageID": "",
                 "ready": False, "restartCount": 0, "started": False,
                 "state": {"terminated": term}}
                for c in (pod.get("spec") or {}).get("containers", [])]
    conds = []
    for c in (pod.get("status") or {}).get("conditions", []):
        if c.get("type") in ("Ready", "ContainersReady"):
            c = dict(c, status="False", lastTransitionTime=now,
                     reason="PodCompleted" if phase == "Succeeded" else "PodFailed")
        conds.append(c)
    status = dict(pod.get("status") or {}, phase=phase, conditions=conds,
                  containerStatuses=statuses)
    return dict(pod, status=status)

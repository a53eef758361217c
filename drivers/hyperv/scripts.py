"""The fixed PowerShell scripts the hyperv driver runs.

Every script is a constant. Values (VM ids, host names, sizes) never enter the script text: they
travel as base64-encoded UTF-8 JSON on the command's standard input, which the common prologue
decodes with ``ConvertFrom-Json`` into ``$p``. PowerShell therefore only ever sees them as data,
whatever characters a VM or host name holds. Each script writes one JSON document on stdout with a
``Status`` of ``OK``, ``NotFound``, ``HostNotFound`` or ``Unsupported``.

Long lines are PowerShell pipelines, kept whole so they read as PowerShell.
"""

# ruff: noqa: E501
from __future__ import annotations

import base64
import json
from typing import Any

PROLOGUE = r"""$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
$p = [Text.Encoding]::UTF8.GetString([Convert]::FromBase64String(($input | Out-String).Trim())) | ConvertFrom-Json
if ($p.Cluster) {
    $computers = @(Get-ClusterNode -Cluster $p.Cluster | Select-Object -ExpandProperty Name)
} else {
    $computers = @($p.Hosts)
}
"""

FIND_VM = r"""$vm = Get-VM -ComputerName $computers -Id $p.VMId -ErrorAction SilentlyContinue
if (-not $vm) {
    @{ Status = 'NotFound' } | ConvertTo-Json -Compress
    return
}
"""

INVENTORY = (
    PROLOGUE
    + r"""$vmhosts = @(Get-VMHost -ComputerName $computers | Select-Object ComputerName, LogicalProcessorCount, MemoryCapacity)
$sockets = @(Get-CimInstance -ClassName Win32_Processor -ComputerName $computers | Select-Object PSComputerName, MaxClockSpeed)
# migrations before the VMs: a move that ends in between shows the VM on its new host, not settled on the old
$migrations = @(Get-CimInstance -Namespace 'root\virtualization\v2' -ClassName Msvm_MigrationJob -ComputerName $computers | Select-Object PSComputerName, VirtualSystemName, DestinationHost, JobState, PercentComplete)
$vms = @(Get-VM -ComputerName $computers)
$processors = @($vms | Get-VMProcessor | Select-Object VMId, Count, Reserve, Maximum, RelativeWeight)
$memory = @($vms | Get-VMMemory | Select-Object VMId, Startup, DynamicMemoryEnabled, Minimum, Maximum, Priority)
if ($p.Cluster) {
    $nodes = @(Get-ClusterNode -Cluster $p.Cluster | Select-Object Name, State)
    $markers = @()
} else {
    $nodes = @()
    $markers = @(Invoke-Command -ComputerName $computers -ScriptBlock { Get-ItemProperty -Path 'HKLM:\SOFTWARE\Cotenancy' -Name 'Maintenance' -ErrorAction SilentlyContinue } | Select-Object PSComputerName, Maintenance)
}
@{
    Status = 'OK'
    Hosts = $vmhosts
    Sockets = $sockets
    VMs = @($vms | Select-Object VMId, VMName, ComputerName, State, OperationalStatus, IsClustered, MemoryAssigned)
    Processors = $processors
    Memory = $memory
    Nodes = $nodes
    Maintenance = $markers
    Migrations = $migrations
} | ConvertTo-Json -Depth 4 -Compress
"""
)

METRICS = (
    PROLOGUE
    + r"""$samples = @((Get-Counter -ComputerName $computers -Counter $p.Counters -ErrorAction SilentlyContinue).CounterSamples | Select-Object Path, InstanceName, CookedValue)
$sockets = @(Get-CimInstance -ClassName Win32_Processor -ComputerName $computers | Select-Object PSComputerName, MaxClockSpeed)
$vms = @(Get-VM -ComputerName $computers)
$metering = @($vms | Where-Object ResourceMeteringEnabled | Measure-VM | Select-Object VMId, AvgCPU, AvgRAM, AggregatedDiskDataRead, AggregatedDiskDataWritten, NetworkMeteredTrafficReport, MeteringDuration)
@{
    Status = 'OK'
    Samples = $samples
    Sockets = $sockets
    VMs = @($vms | Select-Object VMId, VMName, ComputerName, ProcessorCount)
    Metering = $metering
} | ConvertTo-Json -Depth 5 -Compress
"""
)

MIGRATE = (
    PROLOGUE
    + FIND_VM
    + r"""if (-not ($computers -contains $p.Target)) {
    @{ Status = 'HostNotFound' } | ConvertTo-Json -Compress
    return
}
if ($p.Cluster -and $vm.IsClustered) {
    $null = Move-ClusterVirtualMachineRole -Cluster $p.Cluster -VMId $p.VMId -Node $p.Target -MigrationType Live
} else {
    Move-VM -VM $vm -DestinationHost $p.Target
}
$moved = Get-VM -ComputerName $p.Target -Id $p.VMId
@{ Status = 'OK'; ComputerName = $moved.ComputerName; State = $moved.State } | ConvertTo-Json -Compress
"""
)

RESIZE = (
    PROLOGUE
    + FIND_VM
    + r"""$restart = $false
if ($p.ProcessorCount -ne $vm.ProcessorCount -and $vm.State -ne 'Off') {
    if (-not $p.RestartForProcessors) {
        @{ Status = 'Unsupported'; Reason = 'ProcessorCountWhileRunning' } | ConvertTo-Json -Compress
        return
    }
    $restart = $true
    Stop-VM -VM $vm -Force
}
if ($p.ProcessorCount -ne $vm.ProcessorCount) {
    Set-VMProcessor -VM $vm -Count $p.ProcessorCount
}
$memory = Get-VMMemory -VM $vm
if ($memory.DynamicMemoryEnabled) {
    $minimum = $p.MemoryBytes
    if ($memory.Minimum -lt $minimum) {
        $minimum = $memory.Minimum
    }
    Set-VMMemory -VM $vm -MinimumBytes $minimum -MaximumBytes $p.MemoryBytes
} else {
    Set-VMMemory -VM $vm -StartupBytes $p.MemoryBytes
}
if ($restart) {
    Start-VM -VM $vm
}
$resized = Get-VMProcessor -VM $vm
$memory = Get-VMMemory -VM $vm
@{ Status = 'OK'; Count = $resized.Count; Startup = $memory.Startup; Maximum = $memory.Maximum } | ConvertTo-Json -Compress
"""
)

SET_ALLOCATION = (
    PROLOGUE
    + FIND_VM
    + r"""Set-VMProcessor -VM $vm -Reserve $p.Reserve -Maximum $p.Maximum -RelativeWeight $p.RelativeWeight
$memory = Get-VMMemory -VM $vm
if ($memory.DynamicMemoryEnabled) {
    if ($p.MinimumBytes) {
        Set-VMMemory -VM $vm -MinimumBytes $p.MinimumBytes -Priority $p.MemoryPriority
    } else {
        Set-VMMemory -VM $vm -Priority $p.MemoryPriority
    }
}
$processor = Get-VMProcessor -VM $vm
@{ Status = 'OK'; Reserve = $processor.Reserve; Maximum = $processor.Maximum; RelativeWeight = $processor.RelativeWeight } | ConvertTo-Json -Compress
"""
)

MAINTENANCE = (
    PROLOGUE
    + r"""if (-not ($computers -contains $p.Host)) {
    @{ Status = 'HostNotFound' } | ConvertTo-Json -Compress
    return
}
if ($p.Cluster) {
    if ($p.Enabled -and $p.Drain) {
        $null = Suspend-ClusterNode -Cluster $p.Cluster -Name $p.Host -Drain -Wait
    } elseif ($p.Enabled) {
        $null = Suspend-ClusterNode -Cluster $p.Cluster -Name $p.Host
    } else {
        $null = Resume-ClusterNode -Cluster $p.Cluster -Name $p.Host
    }
    $node = Get-ClusterNode -Cluster $p.Cluster -Name $p.Host
    @{ Status = 'OK'; State = $node.State } | ConvertTo-Json -Compress
} else {
    Invoke-Command -ComputerName $p.Host -ArgumentList ([int]$p.Enabled) -ScriptBlock {
        param($enabled)
        $null = New-Item -Path 'HKLM:\SOFTWARE\Cotenancy' -Force
        $null = New-ItemProperty -Path 'HKLM:\SOFTWARE\Cotenancy' -Name 'Maintenance' -Value $enabled -PropertyType DWord -Force
    }
    @{ Status = 'OK' } | ConvertTo-Json -Compress
}
"""
)

SCRIPTS: dict[str, str] = {
    "inventory": INVENTORY,
    "metrics": METRICS,
    "migrate": MIGRATE,
    "resize": RESIZE,
    "set_allocation": SET_ALLOCATION,
    "maintenance": MAINTENANCE,
}


def encode_script(script: str) -> str:
    """``-EncodedCommand`` form: base64 of UTF-16LE, as powershell.exe expects."""
    return base64.b64encode(script.encode("utf-16-le")).decode("ascii")


def encode_parameters(parameters: dict[str, Any]) -> bytes:
    """The stdin payload: base64 of UTF-8 JSON, so only ASCII letters, digits, ``+/=`` travel."""
    return base64.b64encode(json.dumps(parameters).encode("utf-8"))


def command_arguments(script: str) -> list[str]:
    """Arguments of ``powershell.exe`` for a fixed script that reads its parameters from stdin."""
    return [
        "-NoLogo",
        "-NoProfile",
        "-NonInteractive",
        "-ExecutionPolicy",
        "Bypass",
        "-EncodedCommand",
        encode_script(script),
    ]

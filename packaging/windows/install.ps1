<#
.SYNOPSIS
    Installs Bridgehead as the Windows service "Bridgehead".

.DESCRIPTION
    Needs Python 3.11 or later (python.org installer, "for all users") and an elevated
    PowerShell. Makes a virtual environment in %ProgramFiles%\Bridgehead\venv, installs the
    Bridgehead wheel into it, copies the config to %ProgramData%\Bridgehead\agent.yaml when
    it is not there yet, and runs `bridgehead service install`, which registers and starts
    the service (delayed auto-start, restart on failure). Run it again with a newer wheel to
    upgrade: the service is stopped first and started again by the install.

.EXAMPLE
    .\install.ps1 -Wheel .\bridgehead-0.1.0-py3-none-any.whl -Config .\agent.yaml

.EXAMPLE
    # a domain account instead of the virtual account NT SERVICE\Bridgehead
    .\install.ps1 -Wheel .\bridgehead-0.1.0-py3-none-any.whl -Account 'CORP\svc-bridgehead'
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)] [string] $Wheel,
    [string] $Config,
    [string] $Account,
    [string] $Python = 'py',
    [switch] $DryRun
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest

$principal = [Security.Principal.WindowsPrincipal][Security.Principal.WindowsIdentity]::GetCurrent()
if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
    throw 'Run this script from an elevated PowerShell (Run as administrator).'
}

$programFiles = Join-Path $env:ProgramFiles 'Bridgehead'
$venv = Join-Path $programFiles 'venv'
$dataFolder = Join-Path $env:ProgramData 'Bridgehead'
$target = Join-Path $dataFolder 'agent.yaml'
$bridgehead = Join-Path $venv 'Scripts\bridgehead.exe'

function Invoke-Checked([string] $What, [scriptblock] $Command) {
    & $Command
    if ($LASTEXITCODE -ne 0) { throw "$What failed (exit $LASTEXITCODE)" }
}

$pythonArgs = @()
if ($Python -eq 'py') { $pythonArgs = @('-3') }
Invoke-Checked 'Python 3.11+ check' {
    & $Python @pythonArgs -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'
}

if (-not (Test-Path $venv)) {
    Write-Host "making $venv"
    Invoke-Checked 'making the virtual environment' { & $Python @pythonArgs -m venv $venv }
}
$venvPython = Join-Path $venv 'Scripts\python.exe'
Invoke-Checked 'updating pip' { & $venvPython -m pip install --quiet --upgrade pip }

if (Get-Service -Name 'Bridgehead' -ErrorAction SilentlyContinue) {
    Write-Host 'an earlier Bridgehead service is installed: removing it (config and state kept)'
    Invoke-Checked 'service uninstall' { & $bridgehead service uninstall }
}
Invoke-Checked 'installing the wheel' { & $venvPython -m pip install --quiet --upgrade $Wheel }

New-Item -ItemType Directory -Force -Path $dataFolder | Out-Null
if ($Config -and -not (Test-Path $target)) {
    Write-Host "copying $Config to $target"
    Copy-Item -Path $Config -Destination $target
}
if (-not (Test-Path $target)) {
    throw "no config at ${target}: pass -Config agent.yaml (or write it there) and run again"
}

$serviceArgs = @('service', 'install', '-c', $target)
if ($Account) { $serviceArgs += @('--account', $Account) }
if ($DryRun) { $serviceArgs += '--dry-run' }
if ($Account -and -not $DryRun) {
    $secure = Read-Host -AsSecureString "password for $Account"
    $plain = [Runtime.InteropServices.Marshal]::PtrToStringBSTR(
        [Runtime.InteropServices.Marshal]::SecureStringToBSTR($secure))
    Invoke-Checked 'service install' { $plain | & $bridgehead @serviceArgs }
    Remove-Variable plain
} else {
    Invoke-Checked 'service install' { & $bridgehead @serviceArgs }
}
if (-not $DryRun) {
    Invoke-Checked 'service status' { & $bridgehead service status -c $target }
}

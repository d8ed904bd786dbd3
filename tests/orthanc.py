"""A real PACS for the tests and the ingestion benchmark: Orthanc with its DICOMweb plugin (Debian packages orthanc
and orthanc-dicomweb), one process on a free loopback port, storing in a given folder."""

import io
import json
import os
import shutil
import socket
import subprocess
import time

import pydicom

ORTHANC = shutil.which("Orthanc") or shutil.which("Orthanc", path="/usr/sbin")
PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"
AVAILABLE = ORTHANC is not None and os.path.exists(PLUGIN)
USER, PASSWORD = "monai", "not-a-real-secret-7f3a"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Orthanc:
    """One Orthanc process on loopback with HTTP basic authentication, storing in ``folder``."""

    def __init__(self, folder) -> None:
        self.folder, self.port = folder, free_port()
        folder.mkdir(parents=True, exist_ok=True)
        self.config = folder / "orthanc.json"
        self.config.write_text(json.dumps({
            "Name": "monai-ssl-test", "StorageDirectory": str(folder / "db"), "IndexDirectory": str(folder / "db"),
            "HttpPort": self.port, "DicomServerEnabled": False, "DicomPort": free_port(),
            "RemoteAccessAllowed": False, "AuthenticationEnabled": True, "RegisteredUsers": {USER: PASSWORD},
            "Plugins": [PLUGIN], "DicomWeb": {"Enable": True, "Root": "/dicom-web/"}}))
        self.process, self.log = None, None
        self.source = f"dicomweb+http://127.0.0.1:{self.port}/dicom-web"

    def start(self) -> None:
        import requests

        self.log = open(self.folder / "orthanc.log", "ab")
        self.process = subprocess.Popen([ORTHANC, str(self.config)], stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{self.port}/system", auth=(USER, PASSWORD), timeout=1).ok:
                    return
            except requests.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError(f"Orthanc did not start; see {self.folder / 'orthanc.log'}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
            self.process = None
            self.log.close()

    def upload(self, folder) -> None:
        import requests

        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            payload = path.read_bytes()
            if payload[128:132] != b"DICM":  # Orthanc takes Part 10 files only: add the preamble and file meta
                buffer = io.BytesIO()
                pydicom.dcmread(io.BytesIO(payload), force=True).save_as(buffer, enforce_file_format=True)
                payload = buffer.getvalue()
            answer = requests.post(f"http://127.0.0.1:{self.port}/instances", data=payload, auth=(USER, PASSWORD),
                                   timeout=30)
            answer.raise_for_status()

"""sign stage: signers (local key, in-memory, Azure Key Vault), the package signature over the tag
manifest (OpenSSH SSHSIG + raw signature, ``package_signature``), PAdES on the PDF report
(``pades``), and evaluation keys (``keygen``, ``demo``).

Modules import only ``cryptography`` at load time; pyHanko and the Azure SDK are imported where
they are used, so ``evidence verify`` stays fast to start.
"""

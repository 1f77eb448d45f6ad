/** The events both demos send: vendor CEF, a Cisco ASA line and one malformed line (it must be kept, not dropped). */
export const DEMO_SAMPLES = {
  cef: [
    'CEF:0|Palo Alto Networks|PAN-OS|10.2.3|end|TRAFFIC|1|rt=Nov 22 2026 08:00:00 GMT deviceExternalId=0123456789 src=10.1.1.10 dst=203.0.113.5 sourceTranslatedAddress=198.51.100.7 spt=51514 dpt=443 proto=TCP act=allow cs1Label=Rule cs1=allow-web',
    'CEF:0|Fortinet|Fortigate|v7.2.5|0000000013|traffic:forward close|3|deviceExternalId=FG100F duser=alice src=10.2.2.20 dst=198.51.100.25 spt=60000 dpt=53 proto=17 act=close msg=DNS query to resolver\\=primary',
    'CEF:0|Check Point|VPN-1 & FireWall-1|R81|Log|Drop|5|src=192.0.2.44 dst=10.0.0.9 dpt=3389 proto=6 act=Drop cs2Label=Rule Name cs2=Block RDP',
    'CEF:0|Zscaler|NSSWeblog|5.7|Blocked|Malicious URL|8|suser=bob@example.com request=http://malware.example/payload.exe requestMethod=GET cat=Malware src=10.3.3.30 dst=192.0.2.200',
  ],
  asa: '%ASA-6-302013: Built outbound TCP connection 120937 for outside:198.51.100.10/443 (198.51.100.10/443) to inside:10.4.4.40/52123 (203.0.113.40/52123)',
  malformed: 'this line is neither CEF nor Cisco ASA',
};

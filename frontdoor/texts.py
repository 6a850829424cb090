"""The words of the check page, in Chinese and English."""

from __future__ import annotations

TEXTS: dict[str, dict[str, str]] = {
    "zh": {
        "html_lang": "zh-CN",
        "title": "药品追溯码查验",
        "intro": "输入或粘贴药盒上的追溯码（20位药品追溯码、GS1条码内容或二维码链接）。",
        "label": "追溯码",
        "submit": "查验",
        "placeholder": "例如 81234567890123456789",
        "switch": "English",
        "genuine": "正品",
        "genuine_detail": "此追溯码由生产企业发放，药品在流通中，未发现问题。",
        "caution": "请注意",
        "caution_detail": "追溯码真实，但有需要您注意的情况，见下方提示。",
        "do_not_use": "请勿使用",
        "do_not_use_detail": "追溯码真实，但此药品不应再使用。请联系药店或医生。",
        "not_genuine": "非正品追溯码",
        "not_genuine_detail": "查无此码：请核对输入的追溯码是否与药盒上印刷的完全一致。"
                              "如核对无误，此码不是生产企业发放的追溯码，药品可能是假药，"
                              "请勿使用，并向当地药品监督管理部门举报（12315）。",
        "known_foreign": "已记录，非本企业发码",
        "known_foreign_detail": "此追溯码记录在本系统中，但由其他企业或发码机构发放，"
                                "本系统无法证明其真伪。请向发码方核实。",
        "product_only": "仅为产品信息",
        "product_only_detail": "这是产品的标识，不是单盒药品的追溯码，请扫描药盒上的追溯码。",
        "unreadable": "无法识别",
        "unreadable_detail": "这不是可识别的追溯码，请检查后重新输入。",
        "limited": "查询过于频繁，请稍后再试。",
        # Before what the code reader or the verification said, which is in English.
        "reason_in_english": "说明（英文）：",
        "product": "药品信息",
        "name": "药品名称",
        "generic_name": "通用名",
        "strength": "规格",
        "pack_spec": "包装规格",
        "dosage_form": "剂型",
        "mah": "上市许可持有人",
        "manufacturer": "生产企业",
        "approval_number": "批准文号",
        "lot": "生产批号",
        "expires_on": "有效期至",
        "code": "追溯码",
        "warnings": "提示",
        "w_recalled": "此批药品已被召回，请勿使用，请联系购买药店。",
        "w_withdrawn": "此药品已撤市，请勿使用。",
        "w_expired": "此药品已过有效期，请勿使用。",
        "w_destroyed_or_stolen": "此追溯码登记为已销毁或被盗，请勿使用并举报。",
        "w_voided": "此追溯码已作废，从未用于合法药品，请勿使用并举报。",
        "w_not_commissioned": "此追溯码尚未赋码出厂，不应出现在市场上，请勿使用并举报。",
        "w_already_dispensed": "此药盒已登记为售出/发药。如果您刚刚购买，请向药店核实。",
        "w_decommissioned": "此药盒已退出流通（出口、样品或锁定），请向药店核实。",
        "w_clone_suspected": "此追溯码的查询情况异常，可能被复制，请向药店核实。",
        "w_data_mismatch": "印刷的批号或有效期与登记信息不符，请核对药盒。",
        "w_diversion": "此药品不在本地区的授权销售范围内。",
        "checked": "此追溯码已被查询 {count} 次，首次查询于 {date}。",
        "checked_where": "此追溯码已被查询 {count} 次，首次查询于 {date}，地点：{province}。",
        "checked_first": "这是此追溯码的首次查询。",
        "repaired": "扫描内容有误（如大小写或键盘布局），已按 {code} 识别。",
        "privacy": "本页不显示药品的持有人、库存、流向或价格。",
    },
    "en": {
        "html_lang": "en",
        "title": "Check a medicine pack",
        "intro": "Type or paste the code printed on the pack (the 20-digit Chinese code, the "
                 "GS1 code or the QR code's link).",
        "label": "Code",
        "submit": "Check",
        "placeholder": "e.g. (01)09501101530003(21)…",
        "switch": "中文",
        "genuine": "Genuine",
        "genuine_detail": "The manufacturer issued this code and the pack is on the market. "
                          "Nothing is known against it.",
        "caution": "Take care",
        "caution_detail": "The code is genuine, but there is something you should know: "
                          "see below.",
        "do_not_use": "Do not use",
        "do_not_use_detail": "The code is genuine, but this pack must not be used. Ask your "
                             "pharmacist or doctor.",
        "not_genuine": "Not a genuine code",
        "not_genuine_detail": "No manufacturer issued this code. Check that the code was "
                              "typed exactly as printed on the pack; if it was, the pack may "
                              "be counterfeit: do not use it, and report it to the medicines "
                              "regulator.",
        "known_foreign": "Recorded, issued elsewhere",
        "known_foreign_detail": "This code is recorded here, but another company or code "
                                "issuer issued it: this service cannot vouch for it. Check "
                                "with its issuer.",
        "product_only": "Product only",
        "product_only_detail": "This names a product, not one pack: scan the code printed on "
                               "the pack itself.",
        "unreadable": "Not readable",
        "unreadable_detail": "This is not a code we can read. Check it and try again.",
        "limited": "Too many checks from your address: please try again in a moment.",
        "reason_in_english": "",
        "product": "Product",
        "name": "Name",
        "generic_name": "Generic name",
        "strength": "Strength",
        "pack_spec": "Pack",
        "dosage_form": "Dosage form",
        "mah": "Marketing authorisation holder",
        "manufacturer": "Manufacturer",
        "approval_number": "Approval number",
        "lot": "Lot",
        "expires_on": "Expiry",
        "code": "Code",
        "warnings": "Warnings",
        "w_recalled": "This batch has been recalled. Do not use it; return it to where you "
                      "bought it.",
        "w_withdrawn": "This product has been withdrawn from the market. Do not use it.",
        "w_expired": "This pack is past its expiry date. Do not use it.",
        "w_destroyed_or_stolen": "This code is recorded as destroyed or stolen. Do not use the "
                                 "pack, and report it.",
        "w_voided": "This code was voided and never went onto a legitimate pack. Do not use "
                    "it, and report it.",
        "w_not_commissioned": "This code never left the factory on a pack. Do not use it, and "
                              "report it.",
        "w_already_dispensed": "This pack is recorded as already dispensed. If you have just "
                               "bought it, ask your pharmacist.",
        "w_decommissioned": "This pack was taken out of the supply chain (exported, sample or "
                            "locked). Ask your pharmacist.",
        "w_clone_suspected": "This code has been checked in a way that suggests it was copied. "
                             "Ask your pharmacist.",
        "w_data_mismatch": "The lot or expiry printed with the code differ from the records. "
                           "Check the pack.",
        "w_diversion": "This pack is not authorised for sale in this region.",
        "checked": "This code has been checked {count} times, first on {date}.",
        "checked_where": "This code has been checked {count} times, first on {date} in "
                         "{province}.",
        "checked_first": "This is the first check of this code.",
        "repaired": ("The scan was scrambled (letter case or keyboard layout); "
                     "it was read as {code}."),
        "privacy": "This page never shows who holds a pack, stock, route or price.",
    },
}

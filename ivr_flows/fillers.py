"""The garbage model of a speech menu: everyday words a caller says instead of an option.

A grammar of the menu's words alone forces any speech onto one of them (날씨 heard as 예약). So the
recording is also decoded against these words, and a menu word is only taken when it explains the audio
at least as well as they do: "none of these" becomes an answer. Words that sound like one of the menu's
own words are left out (``garbage_words``), or they would steal the menu's answers.

Pure data and string work: no model here (RecognizerPool keeps only the words its model knows).
"""

from __future__ import annotations

FILLERS: dict[str, str] = {
    # Greetings and courtesy, yes/no and hesitations, numbers, dates, and a contact centre's everyday topics
    # (a caller names what they want, not what the menu offers). Single syllables are left out: they would
    # explain any short word.
    "ko": """
        아니 아니요 아뇨 저기 그냥 여기 거기 이거 그거 어디 언제 누구 어떻게 얼마
        지금 오늘 내일 어제 모레 아침 점심 저녁 시간 요일
        안녕 안녕하세요 여보세요 감사합니다 고맙습니다 죄송합니다 잠깐 잠시만요 그래요 좋아요 싫어요 됐어요
        하나 다섯 일곱 아홉
        전화 번호 전화번호 휴대폰 핸드폰 문자 메시지 이메일 주소 이름 생일
        주문 배송 택배 취소 결제 카드 현금 계좌 은행 송금 입금 출금 잔액 요금 가격 할인 쿠폰 포인트 적립
        회원 가입 탈퇴 로그인 비밀번호 아이디 인증 확인 수정 등록 신청 해지 연장 갱신
        고장 수리 교환 반품 불량 설치 방문 기사 서비스 센터 매장 지점 본사 회사 사무실
        날씨 바람 학교 병원 버스 지하철 기차 비행기 공항 호텔 식당 음식 커피
        사람 남자 여자 아이 엄마 아빠 친구 선생님 회장님 사장님 고객 손님
        가족 사랑 행복 건강 문제 질문 대답 이야기 말씀 소리 목소리 음악 노래 영화 뉴스 인터넷 컴퓨터 프로그램
        하다 되다 있다 없다 오다 보다 알다 먹다 마시다 듣다 부탁
        빨리 천천히 다시 그리고 그런데 그래서 하지만 너무 정말 진짜 아주 많이 조금
    """,
}

# Two words closer than this (edit distance over letters, or over jamo for Hangul, divided by the longer
# one) are confusable: such a filler is dropped from that menu's garbage model.
CONFUSABLE = 0.5


def fillers(language: str) -> tuple[str, ...]:
    short = language.split("-")[0].split("_")[0].lower()
    return tuple(dict.fromkeys(FILLERS.get(short, "").split()))


def garbage_words(language: str, phrases: tuple[str, ...]) -> tuple[str, ...]:
    """The language's fillers minus the menu's words and anything that sounds like one of them."""
    menu = {w for p in phrases for w in p.split()}
    return tuple(f for f in fillers(language)
                 if f not in menu and all(not confusable(f, w) for w in menu))


def confusable(a: str, b: str) -> bool:
    """Close in letters or in sound, or starting with the same sound (a decoder weighs the start of a word
    most: 여기 takes 영업's audio, 예 takes 예약's)."""
    return (distance(a, b) <= CONFUSABLE or sound_distance(a, b) <= CONFUSABLE
            or _letters(a)[:2] == _letters(b)[:2])


# Sounds that a telephone decoder mixes up: a substitution inside one of these classes costs half. The
# silent lead ㅇ is no sound at all (문의 is said [무늬]: 모레 and 노래 are near it, its letters are not).
_LEADS = "ㄱㄲㄴㄷㄸㄹㅁㅂㅃㅅㅆㅇㅈㅉㅊㅋㅌㅍㅎ"
_VOWELS = "ㅏㅐㅑㅒㅓㅔㅕㅖㅗㅘㅙㅚㅛㅜㅝㅞㅟㅠㅡㅢㅣ"
_TAILS = " ㄱㄲㄱㄴㄴㄴㄷㄹㄹㄹㄹㄹㄹㄹㄹㅁㅂㅂㅅㅆㅇㅈㅊㅋㅌㅍㅎ"  # a cluster is heard as its first consonant
_CLASSES = ("ㄱㄲㅋ", "ㄷㄸㅌㅅㅆㅈㅉㅊ", "ㅂㅃㅍ", "ㄴㅁㄹㅇ", "ㅗㅜㅓㅡㅘㅝ", "ㅐㅔㅣㅢㅟㅚㅙㅞ", "ㅑㅕㅛㅠㅒㅖ")
_CLASS = {ch: n for n, group in enumerate(_CLASSES) for ch in group}


def _sounds(word: str) -> list[str]:
    out: list[str] = []
    for ch in word:
        c = ord(ch) - 0xAC00
        if 0 <= c < 11172:
            lead, vowel, tail = _LEADS[c // 588], _VOWELS[(c % 588) // 28], _TAILS[c % 28]
            out += ([lead] if lead != "ㅇ" else []) + [vowel] + ([tail] if tail != " " else [])
        else:
            out.append(ch.lower())
    return out


def sound_distance(a: str, b: str) -> float:
    """Edit distance of the two words' sounds (Hangul: jamo without the silent ㅇ, half a step inside a
    class of similar sounds) over the longer one: 0 same, 1 unrelated."""
    x, y = _sounds(a), _sounds(b)
    if not x or not y:
        return 1.0
    row = [float(j) for j in range(len(y) + 1)]
    for i in range(1, len(x) + 1):
        diagonal, row[0] = row[0], float(i)
        for j in range(1, len(y) + 1):
            same = x[i - 1] == y[j - 1]
            near = not same and _CLASS.get(x[i - 1], -1) == _CLASS.get(y[j - 1], -2)
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (0.0 if same else 0.5 if near else 1.0))
    return row[len(y)] / max(len(x), len(y))


def _letters(word: str) -> list[int]:
    out: list[int] = []
    for ch in word:
        c = ord(ch) - 0xAC00
        if 0 <= c < 11172:  # a Hangul syllable: lead consonant, vowel, optional tail
            out += [1000 + c // 588, 2000 + (c % 588) // 28] + ([3000 + c % 28] if c % 28 else [])
        else:
            out.append(ord(ch.lower()))
    return out


def distance(a: str, b: str) -> float:
    """Edit distance of the two words' letters (jamo for Hangul) over the longer one: 0 same, 1 unrelated."""
    x, y = _letters(a), _letters(b)
    if not x or not y:
        return 1.0
    row = list(range(len(y) + 1))
    for i in range(1, len(x) + 1):
        diagonal, row[0] = row[0], i
        for j in range(1, len(y) + 1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (x[i - 1] != y[j - 1]))
    return row[len(y)] / max(len(x), len(y))

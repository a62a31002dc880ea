from hal.camera.base import Camera, CameraError, CameraInfo, VideoFormat

__all__ = ["Camera", "CameraError", "CameraInfo", "VideoFormat"]
